"""One adversarial-training recipe on MNIST at eps 0.3 and a fixed number of epochs (fp32, on CUDA when present):
clean, FGSM and PGD-40 accuracy on the first 2,000 test images.

    python bench/sweeps/rob_sweep.py NAME '{"adversarial": "pgd", "attack_steps": 3, "width": 24}' 6

The variant changes BASE, the settings of the first sweeps (FGSM training of LeNet width 32). Prints one RESULT line.
"""
import json, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import torch
import robust as R
from common import timed_fit
torch.set_num_threads(1)
BASE = {**R.SETTINGS, "width": 32, "adversarial": "fgsm", "attack_steps": 10}

def scores(task, model, test):
    """bench/robust.py's scores, named as in the results: clean, fgsm and pgd40."""
    return {k.split("_")[0]: v for k, v in R.scores(task, model, test).items() if k.endswith("_accuracy")}


def main(name, extra, epochs):
    extra = dict(extra)
    cfg = R.dw.api.make_config(data_dir=str(R.SHARED_DATA), **{**BASE, **extra}, amp="off")
    task = R.ImageClassification(cfg)
    data = task.prepare(progress=False)
    t0 = time.time()
    _, result, model = timed_fit(task, data, cfg, epochs)
    print("RESULT", json.dumps({"name": name, "extra": extra, "epochs": epochs, **scores(task, model, data.test),
                                "train_acc": round(result.history[-1]["train_accuracy"], 4), "s": round(time.time() - t0)}), flush=True)

if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))

"""One GAN recipe at a fixed number of epochs (fp32, on CUDA when present): FID (bench/gan.py's FeatureNet) at each
epoch from 3 on.

    python bench/sweeps/gan_sweep.py NAME '{"lr": 6e-4, "seed": 1}' 8      # '{"ref": true}' runs the reference loop

The settings are bench/gan.py's, at the DCGAN rate 2e-4 unless the variant names another; the reference is
bench/gan.py's loop. Prints one RESULT line.
"""
import json, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import torch
import gan as B
from common import timed_fit
torch.set_num_threads(1)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def main(name, extra, epochs):
    extra = {"lr": 2e-4, **extra}; ref = extra.pop("ref", False); seed = extra.pop("seed", 0)
    cfg, task, data = B.prepared(**extra)
    cfg.seed = seed; cfg.train.amp = "off"
    fid = B.FidAtEpochEnds(task, data, set(range(3, epochs + 1)))
    t0 = time.time()
    if ref:
        B.reference_run(data.train[0], epochs, seed, fid, device=dev)
    else:
        orig = task.after_epoch

        def after_epoch(run, model, epoch, device):
            orig(run, model, epoch, device)
            fid(model.generator, epoch)
        task.after_epoch = after_epoch
        timed_fit(task, data, cfg, epochs)
    print("RESULT", json.dumps({"name": name, "extra": extra, "ref": ref, "seed": seed, "fid": fid.values,
                                "s": round(time.time() - t0)}), flush=True)

if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))

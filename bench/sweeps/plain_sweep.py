"""bench/robust.py's plain PyTorch PGD training loop, with its settings, for a seed and a number of epochs, on CUDA when present.

    python bench/sweeps/plain_sweep.py NAME SEED EPOCHS
"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1])); sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
import robust as R
from rob_sweep import scores
torch.set_num_threads(1)
name, seed, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = R.dw.api.make_config(data_dir=str(R.SHARED_DATA), **R.SETTINGS, seed=seed)
task = R.ImageClassification(cfg); data = task.prepare(progress=False)
torch.manual_seed(seed)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = task.build_model().to(dev)
t0 = time.time()
R.plain_pgd_training(task, model, data.train[0].to(dev), data.train[1].to(dev), epochs, seed, epochs)
model.eval()
print("RESULT", json.dumps({"name": name, "seed": seed, "epochs": epochs, **scores(task, model, data.test), "s": round(time.time() - t0)}), flush=True)

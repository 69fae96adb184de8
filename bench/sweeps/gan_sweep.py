"""One GAN recipe at a fixed number of epochs (fp32, on CUDA): FID (bench/gan.py's FeatureNet) at each epoch from 3 on.

    python bench/sweeps/gan_sweep.py NAME '{"lr": 6e-4, "seed": 1}' 8      # '{"ref": true}' runs the reference loop

The settings are bench/gan.py's, at the DCGAN rate 2e-4 unless the variant names another. Prints one RESULT line.
"""
import json, math, sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
import torch, torch.nn as nn
import gan as B
from common import timed_fit
from deepworks.fid import frechet_distance, statistics as feature_stats, to_uint8, to_unit
torch.set_num_threads(1)
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")

def fid_of(task, gen, epoch, real_stats, nz):
    g = torch.Generator().manual_seed(epoch)
    z = torch.randn(10000, nz, generator=g).to(dev)
    was = gen.training; gen.eval()
    with torch.no_grad():
        fake = torch.cat([to_uint8(gen(z[i:i + 500]).cpu()) for i in range(0, len(z), 500)])
    gen.train(was)
    return round(frechet_distance(feature_stats(task.features()(fake)[0]), real_stats), 2)

def main(name, extra, epochs):
    extra = {"lr": 2e-4, **extra}; ref = extra.pop("ref", False); seed = extra.pop("seed", 0)
    cfg, task, data = B.prepared(**extra)
    cfg.seed = seed; cfg.train.amp = "off"
    real_stats = feature_stats(task.features()(data.test[0])[0])
    vals = {}
    t0 = time.time()
    if ref:
        torch.manual_seed(seed)
        G, D = B.ReferenceGenerator().to(dev), B.ReferenceDiscriminator().to(dev)
        G.apply(B.weights_init); D.apply(B.weights_init)
        crit = nn.BCELoss()
        od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999)); og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        images = data.train[0].to(dev); n, b = len(images), 64
        for epoch in range(epochs):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).to(dev)
            for i in range(math.ceil(n / b)):
                real = to_unit(images[order[i * b:(i + 1) * b]])
                D.zero_grad(); o = D(real); crit(o, torch.ones_like(o)).backward()
                fake = G(torch.randn(len(real), 100, 1, 1, device=dev)); o = D(fake.detach()); crit(o, torch.zeros_like(o)).backward(); od.step()
                G.zero_grad(); o = D(fake); crit(o, torch.ones_like(o)).backward(); og.step()
            if epoch + 1 >= 3:
                vals[epoch + 1] = fid_of(task, B.Wrapped(G), epoch + 1, real_stats, 100)
    else:
        orig = task.after_epoch
        def after_epoch(run, model, epoch, device):
            orig(run, model, epoch, device)
            if epoch >= 3:
                vals[epoch] = fid_of(task, model.generator, epoch, real_stats, cfg.model.latent_size)
        task.after_epoch = after_epoch
        timed_fit(task, data, cfg, epochs)
    print("RESULT", json.dumps({"name": name, "extra": extra, "ref": ref, "seed": seed, "fid": vals, "s": round(time.time() - t0)}), flush=True)

if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]))

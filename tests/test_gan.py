"""GANs as a user meets them: train on a folder of images, watch the balance, sample with a seed or a class,
resume, measure with FID, and every bad input."""

import functools
import json
import threading
import warnings
from http.server import ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
import deepworks.metrics.fid as fid
from conftest import assert_same_weights, ctrl_c_at_step, draw, shared, weights
from deepworks.cli import main
from deepworks.data.builtin import load_faces
from deepworks.errors import DataError
from deepworks.tasks.gan import GanTraining, gradient_penalty
from deepworks.tasks.gan_balance import GanBalance, GanWarning
from deepworks.tasks.gan_report import problem_lines
from deepworks.training.loop import Interrupted
from test_builtin_data import QuietHandler


@pytest.fixture(autouse=True)
def quick_features(monkeypatch):
    monkeypatch.setattr(fid, "FEATURE_STEPS", 150)  # the FID classifier of these tiny sets learns in a few steps


def make_bars(folder) -> str:
    """256 horizontal and 256 vertical bars, 16 px, in two class folders under `folder`."""
    rng = np.random.default_rng(0)
    for kind in ("hbar", "vbar"):
        (folder / "bars" / kind).mkdir(parents=True)
        for i in range(256):
            draw(kind, 16, rng).save(folder / "bars" / kind / f"{i}.png")
    return str(folder / "bars")


@pytest.fixture
def bars(tmp_path):
    return make_bars(tmp_path)


@pytest.fixture(scope="module")
def conditional_gan(tmp_path_factory):
    """A conditional GAN of the bars, 12 epochs: trained once for the tests that need one that learned."""
    root = tmp_path_factory.mktemp("conditional-gan")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fid, "FEATURE_STEPS", 150)
        return tiny(data=make_bars(root), epochs=12, conditional=True, runs_dir=str(root / "runs"))


def tiny(**settings):
    settings = {"task": "gan", "width": 16, "latent_size": 16, "batch_size": 16, "lr": 0.002, "fid_samples": 512,
                **settings}
    return dw.train(progress=False, **settings)


def line_share(images: torch.Tensor, axis: int) -> float:
    """Share of images with a bright line across them: a row (axis 2) or a column (axis 3) that is mostly ink."""
    x = images[:, 0, 2:-2, 2:-2].float()
    lines = x.mean(dim=2 if axis == 2 else 1)  # mean along each row (axis 2) or each column (axis 3)
    return float((lines.max(1).values > 150).float().mean())


def test_a_conditional_gan_learns_to_draw_bars_of_the_class_asked_for(conditional_gan):
    trained = conditional_gan
    task = trained.task
    torch.manual_seed(0)
    untrained = task.build_model()
    before = task.evaluate(untrained, trained.task.prepare(False).test, trained.device)["fid"]
    after = trained.results["test"]["fid"]
    assert after < 0.5 * before, (before, after)
    hbars, vbars = trained.sample(64, seed=1, label="hbar"), trained.sample(64, seed=1, label="vbar")
    assert line_share(hbars, 2) > 0.6 and line_share(vbars, 3) > 0.6
    assert line_share(hbars, 3) < 0.3 and line_share(vbars, 2) < 0.3
    assert line_share(trained.face.sample(untrained, 64, 1, trained.device, "hbar"), 2) < 0.1
    page = (trained.run.report_dir / "index.html").read_text()
    assert "The images forming" in page and "Balance of the two networks" in page
    assert len(list(trained.run.report_dir.glob("epoch-*.png"))) == 8
    assert "One row per class, the class asked for; top to bottom: hbar, vbar" in page
    test = trained.results["test"]
    assert test["class_accuracy"] > 0.8 and test["class_diversity"] > 0.6, test  # the class asked for, and varied
    assert {"val_fid", "val_diversity", "val_class_entropy", "val_class_accuracy", "train_d_real", "train_d_fake"} <= {
        k for r in trained.run.metrics() if r.get("kind") == "epoch" for k in r}
    assert any(r.get("kind") == "trace" for r in trained.run.metrics())


def test_sampling_is_repeatable_with_a_seed_and_the_cli_writes_grids_and_files(bars, tmp_path, capsys):
    trained = tiny(data=bars, epochs=1)
    a, b, c = trained.sample(8, seed=3), trained.sample(8, seed=3), trained.sample(8, seed=4)
    assert a.dtype == torch.uint8 and a.shape == (8, 1, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(trained.sample(3, seed=3), a[:3])  # one image does not depend on how many are drawn
    assert main(["sample", str(trained.run.path), "--n", "6", "--seed", "3", "--out", str(tmp_path / "g.png"),
                 "--images", str(tmp_path / "each"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seed"] == 3 and len(out["images"]) == 6 and Image.open(out["grid"]).size[0] > 16 * 3
    assert np.array_equal(np.asarray(Image.open(out["images"][0])), a[0, 0].numpy())
    assert main(["sample", str(trained.run.path), "--interpolate", "7", "--out", str(tmp_path / "strip.png")]) == 0
    assert trained.interpolate(7, seed=5).shape == (7, 1, 16, 16)
    assert main(["sample", str(trained.run.path), "--class", "hbar"]) == 2
    assert "trained without --conditional" in capsys.readouterr().err
    assert main(["evaluate", str(trained.run.path), "--data", bars, "--json"]) == 0  # FID against another folder
    measured = json.loads(capsys.readouterr().out)
    assert measured["images"] == 512 and measured["fid"] > 0 and "FeatureNet" in measured["fid_features"]


def test_ctrl_c_mid_epoch_then_resume_gives_the_same_weights_for_both_networks(bars):
    settings = dict(data=bars, epochs=2, restore_best=False, gan_loss="wgan-gp", critic_steps=3)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        reference = tiny(name="whole", **settings)
    assert not [w for w in said if "lr_scheduler" in str(w.message)]  # torch's, about the generator's first steps
    with ctrl_c_at_step(GanTraining, 11), pytest.raises(Interrupted, match="epoch 1, step 11"):
        tiny(name="cut", **settings)
    resumed = dw.train(resume="runs/cut", progress=False)
    ours, theirs = weights(reference.run.path), weights(resumed.run.path)
    assert any(k.startswith("generator.") for k in ours) and any(k.startswith("discriminator.") for k in ours)
    assert_same_weights(ours, theirs)
    trace = lambda run: [(r["step"], r["d_loss"]) for r in run.metrics() if r.get("kind") == "trace"]  # noqa: E731
    assert trace(reference.run) == trace(resumed.run)


def test_fid_of_a_set_against_itself_is_zero_and_grows_with_noise(bars):
    task = GanTraining(dw.api.make_config(task="gan", data=bars))
    data = task.prepare(False)
    features = task.features()
    real = data.train[0]
    stats = fid.statistics(features(real)[0])
    # 0 up to rounding, which depends on the CPU's kernels (sqrtm; a batch's rows summed in another order)
    assert fid.frechet_distance(stats, stats) == pytest.approx(0, abs=1e-4)
    noisy = []
    for sigma in (10, 40, 100):
        x = (real.float() + torch.randn(real.shape, generator=torch.Generator().manual_seed(0)) * sigma)
        noisy.append(fid.frechet_distance(fid.statistics(features(x.clamp(0, 255).to(torch.uint8))[0]), stats))
    assert 0 < noisy[0] < noisy[1] < noisy[2]
    probs = features(real)[1]
    assert fid.class_entropy_score(probs) > 1.8  # two classes, each image clearly one of them
    assert fid.diversity(features(real[:1].expand(50, -1, -1, -1))[0]) == pytest.approx(0, abs=1e-4)
    assert fid.diversity(features(real)[0]) > 0.1  # where two real images are well apart


def test_a_torchscript_feature_extractor_can_replace_the_built_in_one(bars, tmp_path, capsys):
    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool2d(x.float(), 4).flatten(1)

    torch.jit.save(torch.jit.script(Pool()), str(tmp_path / "pool.pt"))
    trained = tiny(data=bars, epochs=1, fid_model=str(tmp_path / "pool.pt"))
    assert "pool.pt" in trained.results["test"]["fid_features"] and trained.results["test"]["fid"] > 0
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    assert main(["train", "--task", "gan", "--data", bars, "--fid-model", str(tmp_path / "bad.pt"), "--epochs", "1",
                 "--width", "8", "--quiet"]) == 2
    assert "is not a TorchScript model" in capsys.readouterr().err


def test_the_gradient_penalty_is_zero_for_a_critic_with_unit_gradient():
    w = torch.randn(1, 1, 8, 8)
    w /= w.norm()
    critic = lambda x, y: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(16, 1, 8, 8), torch.randn(16, 1, 8, 8)
    assert float(gradient_penalty(critic, real, fake, None)) == pytest.approx(0, abs=1e-10)
    assert float(gradient_penalty(lambda x, y: 3 * critic(x, y), real, fake, None)) == pytest.approx(4.0)


def test_each_balance_problem_is_warned_about_once_and_the_report_says_when_it_started_and_ended(bars):
    task = GanTraining(dw.api.make_config(task="gan", data=bars, width=8))
    balance = task.callbacks()[0]
    assert isinstance(balance, GanBalance)
    logged = []
    trainer = SimpleNamespace(engine=SimpleNamespace(is_main=True), step=0, task=SimpleNamespace(
        steps=0, meta={"classes": []}, least_varied=None), run=SimpleNamespace(log=lambda **r: logged.append(r)))

    def epoch(number: int, d_fake: float) -> list:
        trainer.epoch = number - 1
        balance.on_epoch_start(trainer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(12):
                balance.record_trace(step, d_loss=0.01, g_loss=6.0, d_real=0.99, d_fake=d_fake)
        balance.on_epoch_end(trainer, {"epoch": number})
        return [str(w.message) for w in caught if w.category is GanWarning]

    first = epoch(1, d_fake=0.01)
    assert len(first) == 1 and "winning outright" in first[0] and first[0].endswith("(from epoch 1)")
    assert epoch(2, d_fake=0.01) == []  # still winning: no second warning
    assert epoch(3, d_fake=0.4) == [] and epoch(4, d_fake=0.01) == []  # recovered, then back: warned once a run
    assert [r["kind"] for r in logged if r["kind"] != "trace"] == ["warning", "recovered", "warning"]
    lines = problem_lines(logged)
    assert len(lines) == 1 and lines[0].endswith("(from epoch 1, recovered by epoch 3; from epoch 4, still at the end)")
    balance.load_state_dict(balance.state_dict())
    assert balance.open == {"winning": 4} and balance.warned == {"winning"}
    with pytest.warns(GanWarning, match="running away"):
        for i in range(10):
            balance.record_trace(i, d_loss=5.0 + i, g_loss=20.0 + 3 * i, d_real=0.5, d_fake=0.5)
    data = task.prepare(False)
    task.meta = data.meta
    flat = task.build_model()
    for p in flat.generator.parameters():
        torch.nn.init.zeros_(p)  # every noise vector gives the same image
    metrics = task.evaluate(flat, data.val, torch.device("cpu"))
    assert metrics["diversity"] < 0.01


def test_mixed_sizes_and_modes_are_converted_with_a_note_and_corrupt_files_skipped(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(40):
        draw("hbar", 16 if i % 2 else 24, rng, mode="RGB" if i % 3 == 0 else "L").save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match=r"(?s)1 file\(s\) could not be read.*broken.png"):
        task = GanTraining(dw.api.make_config(task="gan", data=str(folder), batch_size=8))
        data = task.prepare(False)
    assert data.train[0].shape == (36, 1, 28, 28)  # the commonest side is 16 or 24: 24 wins the tie; a DCGAN makes 28
    assert len(data.test[0]) == 4 and task.meta["fid_reference"] == "held-out"  # no test split: 10 % held out for FID
    assert any("differ in size or colour mode" in n for n in data.notes)
    assert any("4 images (10%, --test-fraction) were held out as the FID's real reference" in n for n in data.notes)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "64"], "has 9 image(s) to train on, fewer than one batch of --batch-size 64"),
    (["--conditional"], "--conditional needs class labels"),
    (["--image-size", "20"], "A DCGAN needs an image size of 4 or 7 times a power of two"),
])
def test_bad_gan_input_gets_a_clear_message(tmp_path, capsys, args, message):
    rng = np.random.default_rng(2)
    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(10):
        draw("vbar", 16, rng).save(folder / f"{i}.png")
    assert main(["train", "--task", "gan", "--data", str(folder), "--batch-size", "4", "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_classes_and_the_wrong_kind_of_run_are_named(conditional_gan, use_runs, capsys):
    trained = conditional_gan
    with pytest.raises(DataError, match="Unknown class 'cat'. This run knows 2 classes: hbar, vbar"):
        trained.sample(4, label="cat")
    assert trained.sample(4, label=1).shape[0] == 4
    assert main(["sample", str(use_runs["txt"])]) == 2  # a text run
    assert "'sample' is for a GAN run" in capsys.readouterr().err


def test_faces_are_read_from_the_data_dir_and_download_from_a_mirror(tmp_path, monkeypatch):
    folder = shared("olivetti_faces", "olivettifaces.mat").parent.parent
    faces = load_faces(folder, download=False)
    assert faces.x.shape == (400, 1, 64, 64) and list(np.bincount(faces.y)) == [10] * 40
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("DEEPWORKS_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        again = load_faces(tmp_path / "cache", download=True)
        assert np.array_equal(again.x, faces.x)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(DataError, match="The Olivetti face set is not in"):
        load_faces(tmp_path / "empty", download=False)


def test_conditional_runs_default_to_the_small_data_recipe_and_each_part_can_be_set(bars):
    plain = GanTraining(dw.api.make_config(task="gan", data=bars)).cfg
    assert (plain.train.gan_loss, plain.model.spectral_norm, plain.train.diffaugment, plain.train.lr) == (
        "bce", False, "none", 6e-4)
    conditional = GanTraining(dw.api.make_config(task="gan", data=bars, conditional=True)).cfg
    assert (conditional.train.gan_loss, conditional.model.spectral_norm, conditional.train.diffaugment,
            conditional.train.lr) == ("hinge", True, "translation+cutout", 4e-4)
    chosen = GanTraining(dw.api.make_config(task="gan", data=bars, conditional=True, gan_loss="bce", lr=1e-3,
                                            spectral_norm=False, diffaugment="none")).cfg
    assert (chosen.train.gan_loss, chosen.model.spectral_norm, chosen.train.diffaugment, chosen.train.lr) == (
        "bce", False, "none", 1e-3)
    task = GanTraining(dw.api.make_config(task="gan", data=bars, conditional=True, width=8))
    task.prepare(False)
    assert task.meta["conditioning"] == "batchnorm" and task.build_model().generator.embed is None
    del task.meta["conditioning"]  # a conditional run from before: its generator took the class beside the noise
    assert task.build_model().generator.embed is not None
    finished = GanTraining(dw.api.make_config(task="gan", data=bars, conditional=True), meta=dict(task.meta))
    assert finished.cfg.train.diffaugment == "none"  # loaded with its meta: it trained without DiffAugment
    task.meta["conditioning"] = "batchnorm"
    task.before_resume({"task": {"steps": 40, "last_g": 0.5, "recipe": 2}})  # interrupted since: as it is
    assert (task.meta["conditioning"], task.cfg.train.diffaugment) == ("batchnorm", "translation+cutout")
    task.before_resume({"task": {"steps": 40, "last_g": 0.5}})  # interrupted before: rebuilt as it was made
    assert (task.meta["conditioning"], task.cfg.train.diffaugment) == ("concat", "none")


def test_diffaugment_changes_real_and_generated_images_alike_and_passes_gradients():
    from deepworks.models.diffaugment import cutout, diff_augment, parse_policy, translation

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a square in the middle
    moved = translation(x)
    assert moved.shape == x.shape and torch.equal(moved.sum((1, 2, 3)), x.sum((1, 2, 3)))  # shifted, not cut
    assert len({tuple(m.nonzero()[0].tolist()) for m in moved}) > 5  # each image its own shift
    holed = cutout(torch.ones(64, 1, 16, 16))
    assert ((holed == 0).flatten(1).sum(1) >= 16).all() and (holed.flatten(1).sum(1) > 0).all()
    torch.manual_seed(1)
    a = diff_augment(x, parse_policy("colour+translation+cutout"))
    torch.manual_seed(1)
    assert torch.equal(a, diff_augment(x, parse_policy("colour+translation+cutout")))  # seeded: repeatable
    source = torch.rand(8, 3, 16, 16, requires_grad=True)
    diff_augment(source, parse_policy("colour+translation+cutout")).sum().backward()
    assert source.grad is not None and source.grad.abs().sum() > 0
    assert parse_policy("none") == () and parse_policy(None) == ()

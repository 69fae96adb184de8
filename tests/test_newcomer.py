"""What a newcomer met that was wrong or misleading (shared/research/newcomer.md): defaults that overfit photos in
silence, an unreadable text sample, a conditional GAN that learned nothing, GAN verdicts on runs too short to judge,
an audit that named row numbers, figures the report did not show, and data that could not be read though it was
fine (UTF-16, Latin-1 sentence pairs, broken links)."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

import deepworks as dw
import deepworks.metrics.fid as fid
from conftest import draw
from deepworks.cli import main
from test_data_images import png_header_only


@pytest.fixture
def colour_photos(tmp_path):
    """photos/{red,blue}/*.png: 24 colour pictures per class, a coloured bar on a noisy background."""
    rng = np.random.default_rng(0)
    for cls, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(24):
            img = rng.integers(0, 90, (20, 20, 3)).astype(np.uint8)
            a = rng.integers(2, 14)
            img[a:a + 4, 2:-2, channel] = 255
            Image.fromarray(img).save(tmp_path / "photos" / cls / f"{i}.png")
    return tmp_path / "photos"


# --- defaults from the data, and a word when a run overfits ----------------------------------------------------
def test_colour_photos_get_a_resnet_with_crop_and_flip_and_early_stopping(colour_photos):
    run = dw.train(data=str(colour_photos), epochs=2, baseline=False, progress=False)
    cfg = run.cfg
    assert (cfg.model.name, cfg.data.augment, cfg.train.patience) == ("resnet", "crop+flip", 5)
    assert run.run.name == "photos-resnet"


def test_grey_images_get_the_small_cnn_and_its_recipe_and_a_choice_is_kept(image_folder):
    run = dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False)
    assert (run.cfg.model.name, run.cfg.data.augment, run.cfg.train.label_smoothing) == ("smallcnn", "none", 0.1)
    chosen = dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False, model="mlp", augment="flip",
                      patience=0)
    assert (chosen.cfg.model.name, chosen.cfg.data.augment, chosen.cfg.train.patience) == ("mlp", "flip", 0)
    assert chosen.cfg.train.label_smoothing == 0.0  # the small CNN's recipe is its own
    unsmoothed = dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False, label_smoothing=0.0)
    assert (unsmoothed.cfg.model.name, unsmoothed.cfg.train.label_smoothing) == ("smallcnn", 0.0)  # a choice is kept


def test_the_small_cnn_aims_at_fewer_steps_and_adversarial_training_keeps_the_usual_recipe():
    from deepworks.config import Config
    from deepworks.tasks.base import Prepared
    from deepworks.tasks.image import ImageClassification

    def defaults(model, adversarial="none", n=54_000):
        cfg = Config()
        cfg.model.name, cfg.train.adversarial = model, adversarial
        task = ImageClassification(cfg)
        task.data_defaults(1, n)
        data = Prepared(train=(torch.zeros(n, 1, 1, 1), torch.zeros(n)), val=None, test=None, meta={})
        return task.default_epochs(data), cfg.train.label_smoothing

    assert defaults(None) == (1, 0.1)  # MNIST's 54,000 training images: one epoch of 422 steps
    assert defaults(None, n=1458) == (34, 0.1)  # the digits: 12 steps an epoch
    assert defaults("lenet") == (3, 0.0)  # about 1,200 steps, at least 3 epochs
    assert defaults(None, adversarial="pgd") == (3, 0.0)  # label smoothing can mask an attack's gradients


def test_augment_none_is_a_choice_not_an_unset_setting(colour_photos, capsys):
    assert main(["train", "--data", str(colour_photos), "--augment", "none", "--epochs", "1", "--no-baseline",
                 "--quiet", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)["run"]
    assert "augment: none" in open(f"{run}/config.yaml").read()


def test_a_run_whose_validation_loss_climbs_is_told_it_overfit_and_what_to_try():
    from deepworks.config import Config
    from deepworks.tasks.image import ImageClassification

    task = ImageClassification(Config())
    task.cfg.model.name, task.cfg.data.augment = "lenet", "none"
    climbing = [{"kind": "epoch", "epoch": e, "train_loss": 2.0 / e, "val_loss": v}
                for e, v in enumerate([1.6, 1.1, 0.9, 1.0, 1.4, 2.0, 2.6], 1)]
    note = task.make_report().overfit_note(climbing, best_epoch=4)
    assert note.startswith("The model overfit: its validation loss fell to 0.900 at epoch 3, then rose to 2.600 by "
                           "epoch 7 while the training loss went on falling (0.667 to 0.286).")
    assert "The weights of epoch 4, the best on validation, were kept" in note and "--augment crop+flip" in note
    steady = [{**r, "val_loss": 1.0 / r["epoch"]} for r in climbing]
    assert task.make_report().overfit_note(steady, best_epoch=7) is None


def test_the_summary_and_report_carry_the_overfitting_note(tmp_path, capsys):
    rng = np.random.default_rng(0)  # random labels: nothing to learn but the training images themselves
    np.savez(tmp_path / "noise.npz", x=rng.integers(0, 256, (200, 8, 8)).astype(np.uint8), y=rng.integers(0, 4, 200))
    assert main(["train", "--data", str(tmp_path / "noise.npz"), "--model", "mlp", "--width", "256", "--epochs", "40",
                 "--monitor", "val_loss", "--patience", "0", "--no-baseline", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "note      The model overfit: its validation loss fell to" in out and "--augment crop+flip" in out
    assert "The model overfit" in open("runs/noise-mlp/report/index.html").read()


# --- text: a sample a person can read ----------------------------------------------------------------------------
def test_a_sample_starts_where_the_texts_lines_start_and_is_shown_readably():
    from deepworks.tasks.text import readable, sample_prime

    source = "x = 1\n    return x\n\ndef main(argv):\n    pass\nclass Thing:\n"
    assert sample_prime(source) == "def "
    assert sample_prime("First Citizen:\nBefore we proceed any further, hear me speak.\n") == "Before "
    assert readable("#\n        \n\n\n    x = 1   \n\t y\n" + "z" * 150) == "#\n\n    x = 1\n     y\n" + "z" * 99 + "…"
    assert readable("   \n\n  \n") == "(only spaces and line breaks)"


def test_the_text_summary_shows_the_sample_from_its_prime(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("The quick brown fox jumps over the lazy dog.\n" * 400)
    assert main(["train", "--task", "text", "--data", str(tmp_path / "notes.txt"), "--width", "32", "--depth", "1",
                 "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sample    (temperature 0.8)\n          The " in out
    results = json.loads(open("runs/notes-lstm/results.json").read())
    assert results["sample"]["prime"] == "The " and results["samples"]["0.5"].startswith("The ")
    page = open("runs/notes-lstm/report/index.html").read()
    assert "<table class='samples'>" in page and "white-space:pre-wrap" in page and "table-layout:fixed" in page


def test_encoding_a_text_takes_memory_near_the_texts_own_size():
    from deepworks.data.text import encode

    text = "abcdefghij \n" * 400_000  # 4.8 M characters
    vocab = sorted(set(text))
    tracemalloc.start()
    ids = encode(text, vocab)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ids.dtype == np.uint8
    assert [vocab[i] for i in ids[:12]] == list("abcdefghij \n")
    assert peak < 2 * len(text) + 16 * 2 ** 20, peak  # it was 16 bytes a character: UTF-32 and int64 copies


def test_training_windows_are_the_streams_windows():
    from deepworks.tasks.text import stream_windows

    ids = torch.arange(1000, dtype=torch.int16)
    streams, seq_len = 7, 10
    per_stream = (len(ids) - 1) // streams
    steps = per_stream // seq_len
    start = (torch.arange(steps)[:, None] * seq_len + torch.arange(streams)[None, :] * per_stream).reshape(-1)
    assert torch.equal(stream_windows(ids, streams, seq_len), ids[start[:, None] + torch.arange(seq_len + 1)[None, :]])


# --- GANs: a conditional discriminator that can learn, and verdicts only with evidence -------------------------
def test_the_class_term_of_a_conditional_discriminator_starts_on_the_scale_of_its_score():
    from deepworks.models.dcgan import Discriminator

    for size in (16, 28, 32, 64):
        torch.manual_seed(0)
        critic = Discriminator(1, size, 64, 10, "batch")
        x, y = torch.rand(128, 1, size, size) * 2 - 1, torch.randint(0, 10, (128,))
        with torch.no_grad():
            h = critic.features(x)
            score, projection = critic.score(h).flatten(), (critic.embed(y) * h.sum((2, 3))).sum(1)
        ratio = float(projection.std() / score.std())
        assert 0.3 < ratio < 3, (size, ratio)  # it was 100 to 230 with PyTorch's N(0, 1) embedding


@pytest.fixture
def quick_features(monkeypatch):
    monkeypatch.setattr(fid, "FEATURE_STEPS", 20)


def test_a_short_gan_run_is_told_it_is_short_not_that_it_collapsed(quick_features, capsys):
    assert main(["train", "--task", "gan", "--epochs", "1", "--width", "8", "--latent-size", "8", "--fid-samples",
                 "64"]) == 0
    captured = capsys.readouterr()
    assert "Training the classifier whose features FID compares, on 1,618 images for 20 steps" in captured.err
    assert "Mode collapse" not in captured.out + captured.err
    assert "warning   Only 26 optimizer steps ran: a GAN needs thousands" in captured.out
    results = json.loads(open("runs/digits-dcgan/results.json").read())
    assert results["baseline"]["fid"] > 0.01  # real training images against held-out real ones: no longer 0 exactly
    assert results["splits"] == {"train": 1618, "fid_reference": 64}  # --fid-samples of the 179 held out
    assert results["fit"]["total_seconds"] > results["fit"]["train_seconds"]


def test_a_conditional_gan_reports_diversity_within_each_class(quick_features, tmp_path):
    rng = np.random.default_rng(0)
    for kind in ("hbar", "vbar"):
        (tmp_path / "bars" / kind).mkdir(parents=True)
        for i in range(64):
            draw(kind, 16, rng).save(tmp_path / "bars" / kind / f"{i}.png")
    run = dw.train(task="gan", data=str(tmp_path / "bars"), conditional=True, epochs=1, width=8, latent_size=8,
                   batch_size=16, fid_samples=64, progress=False)
    assert 0 < run.results["test"]["class_diversity"] < 5
    assert any("val_class_diversity" in r for r in run.run.metrics() if r.get("kind") == "epoch")


# --- the audit names files, shows pairs and finds label conflicts ------------------------------------------------
def test_the_audit_names_files_shows_every_pair_and_calls_a_picture_in_two_classes_a_conflict(image_folder, tmp_path):
    (image_folder / "vbar" / "copy-of-hbar-3.png").write_bytes((image_folder / "hbar" / "3.png").read_bytes())
    (image_folder / "hbar" / "again.png").write_bytes((image_folder / "hbar" / "5.png").read_bytes())
    (image_folder / "empty").mkdir()
    png_header_only(image_folder / "vbar" / "bomb.png", 40000, 40000)
    result = dw.audit(str(image_folder), out=str(tmp_path / "audit"))
    found = {f["check"]: f for f in result["findings"]}
    conflict = found["label-conflict"]
    assert "filed under two different classes" in conflict["message"] and "copy-of-hbar-3.png" in conflict["message"]
    assert conflict["details"]["classes"][0] == ["hbar", "vbar"]
    assert any("again.png" in name for pair in found["duplicates"]["details"]["files"] for name in pair)
    assert "photos/hbar/" in found["duplicates"]["message"] and "#" not in found["duplicates"]["message"]
    assert "empty" in found["empty-classes"]["message"] and "bomb.png" in found["corrupt"]["message"]
    assert (tmp_path / "audit" / "pairs.png").is_file()
    assert "Copies and conflicts" in (tmp_path / "audit" / "index.html").read_text()


def test_training_warns_about_copies_by_file_name(image_folder):
    for i in range(6):  # copies of one picture: the seeded split puts some of them in validation or test
        (image_folder / "hbar" / f"dup{i}.png").write_bytes((image_folder / "hbar" / "0.png").read_bytes())
    with pytest.warns(UserWarning, match=r"photos/hbar/(dup\d|0)\.png"):
        dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False)


def test_a_decompression_bomb_among_gan_images_is_skipped_with_a_warning(tmp_path, quick_features):
    rng = np.random.default_rng(0)
    (tmp_path / "faces").mkdir()
    for i in range(40):
        draw("square", 16, rng).save(tmp_path / "faces" / f"{i}.png")
    png_header_only(tmp_path / "faces" / "bomb.png", 40000, 40000)
    with pytest.warns(UserWarning, match=r"(?s)1 file\(s\) could not be read.*bomb.png.*decompression bomb"):
        dw.train(task="gan", data=str(tmp_path / "faces"), epochs=1, width=8, latent_size=8, batch_size=8,
                 fid_samples=16, progress=False)


def test_links_that_lead_nowhere_are_listed_not_dropped_in_silence(image_folder):
    (image_folder / "hbar" / "gone.png").symlink_to(image_folder / "nowhere.png")
    (image_folder / "vbar" / "loop-a.png").symlink_to(image_folder / "vbar" / "loop-b.png")
    (image_folder / "vbar" / "loop-b.png").symlink_to(image_folder / "vbar" / "loop-a.png")
    with pytest.warns(UserWarning) as caught:
        dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False)
    message = next(str(w.message) for w in caught if "could not be read" in str(w.message))
    assert "3 file(s) could not be read" in message and "gone.png: a symbolic link to" in message
    assert "loop-a.png: a symbolic link that loops back on itself" in message
    with pytest.raises(dw.DeepworksError, match=r"3 file\(s\) could not be read as images"):
        dw.train(data=str(image_folder), epochs=1, baseline=False, progress=False, strict=True)


# --- data that is fine, though it is not UTF-8 --------------------------------------------------------------------
def test_utf16_text_with_its_byte_order_mark_trains(tmp_path):
    (tmp_path / "u.txt").write_text("hello world, said the cat.\n" * 300, encoding="utf-16")
    run = dw.train(task="text", data=str(tmp_path / "u.txt"), width=16, depth=1, seq_len=16, epochs=1, progress=False)
    assert "".join(run.task.meta["vocab"]) == "\n ,.acdehilorstw"


def test_latin1_sentence_pairs_train_with_the_encoding_the_message_suggests(tmp_path, capsys):
    (tmp_path / "l.tsv").write_bytes("".join(f"caf\xe9 {i % 9}\tcoffee {i % 9}\n" for i in range(60)).encode("latin-1"))
    assert main(["train", "--task", "translate", "--data", str(tmp_path / "l.tsv"), "--encoding", "latin-1",
                 "--width", "8", "--embed-size", "8", "--epochs", "1", "--min-freq", "1", "--quiet", "--name",
                 "latin"]) == 0
    (tmp_path / "in.txt").write_bytes("caf\xe9 3\n".encode("latin-1"))
    capsys.readouterr()
    assert main(["translate", "latin", "--file", str(tmp_path / "in.txt"), "--encoding", "latin-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["source_tokens"] == ["café", "3"]
    (tmp_path / "mac.tsv").write_bytes(b"".join(b"a%d b\tb a%d\r" % (i, i) for i in range(40)))
    from deepworks.data.pairs import read_tsv

    src, tgt, _ = read_tsv(tmp_path / "mac.tsv")
    assert len(src) == 40 and tgt[3] == "b a3"


def test_translate_says_which_file_it_plotted(tmp_path, capsys):
    (tmp_path / "p.tsv").write_text("".join(f"a{i % 7} b\tb a{i % 7}\n" for i in range(40)))
    dw.train(task="translate", data=str(tmp_path / "p.tsv"), width=8, embed_size=8, epochs=1, min_freq=1,
             progress=False, name="plot")
    assert main(["translate", "plot", "a3 b", "--plot", str(tmp_path / "where.png")]) == 0
    assert f"wrote {tmp_path / 'where.png'}" in capsys.readouterr().err and (tmp_path / "where.png").is_file()


# --- the trust tools' figures are in the run's report, and attacks show every class -----------------------------
def test_trust_figures_are_linked_from_the_report_and_attack_examples_cover_the_classes():
    run = dw.train(data="digits", model="lenet", width=2, epochs=1, baseline=False, progress=False)
    result = run.attack("fgsm", 0.1, samples=100, show=6)
    run.explain(str(_first_test_image(run)))
    page = (run.run.report_dir / "index.html").read_text()
    assert "Robustness and explanations" in page and "attack-fgsm-eps0.1-curve.png" in page and "explain-" in page
    run.attack("fgsm", 0.2, samples=50, show=2)
    page = (run.run.report_dir / "index.html").read_text()
    assert page.count("Robustness and explanations") == 1 and "attack-fgsm-eps0.2-curve.png" in page
    from deepworks.trust.tools import spread_over_classes

    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)
    assert spread_over_classes(torch.arange(30), labels, 6).tolist() == [0, 10, 20, 1, 11, 21]
    assert result["files"]["examples"]


def _first_test_image(run):
    x, _ = run.examples("test")
    path = run.run.path.parent / "one.png"
    Image.fromarray(x[0, 0].numpy()).save(path)
    return path

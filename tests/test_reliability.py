"""What a flaky machine and a careless moment do to a run: a full disk, Ctrl-C at the end, two processes on one run,
kills in the middle of a write, a busy neighbour, a reader that goes away. Nothing is lost, and every one says what
happened and what to do."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import deepworks as dw
from conftest import assert_same_weights, weights
from deepworks.training import threads
from deepworks.cli import main
from deepworks.errors import DeepworksError
from deepworks.run import Run

QUICK = dict(data="digits", model="mlp", depth=1, width=32, baseline=False, progress=False)


def test_help_and_version_answer_without_loading_torch():
    code = ("import sys; from deepworks.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--threads" in out.stdout and out.stdout.strip().endswith("False")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    (tmp_path / "t.txt").write_text("abc def ghi\n" * 300)
    run = dw.train(task="text", data=str(tmp_path / "t.txt"), width=16, depth=1, seq_len=16, epochs=1, progress=False)
    shell = (f"set -o pipefail; {sys.executable} -m deepworks generate {run.run.path} --length 300000 --seed 1 "
             f"| head -c 50 > /dev/null")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_threads_come_from_the_flag_the_environment_or_the_free_cores(monkeypatch):
    monkeypatch.setattr(threads, "_chosen", {})
    monkeypatch.delenv("DEEPWORKS_THREADS")
    try:
        assert threads.configure(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setattr(threads, "_chosen", {})
        monkeypatch.setenv("DEEPWORKS_THREADS", "1")
        assert threads.configure() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(threads, "_chosen", {})
        monkeypatch.delenv("DEEPWORKS_THREADS")
        monkeypatch.setattr(threads, "running_elsewhere", lambda: 1)
        monkeypatch.setattr(threads, "usable_cores", lambda: 2)
        assert threads.configure() == 1  # one of two cores is busy: one thread
        assert threads.configure(default=2) == 2  # a resumed run goes on with its own count
        with pytest.raises(DeepworksError, match="--threads must be a positive number of threads, or auto. "
                                                 "Received: 'many'"):
            threads.configure("many")
    finally:
        torch.set_num_threads(1)


def test_a_busy_process_counts_as_taking_a_core():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    try:
        assert threads.running_elsewhere(samples=3) >= 1
    finally:
        busy.kill()
        busy.wait()


def test_openmp_is_asked_for_short_spins_before_torch_starts():
    code = "import os, deepworks, torch; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('KMP_BLOCKTIME'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["1000", "1"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.split() == ["None", "None"]  # a user's own choice wins


def test_a_second_process_cannot_train_a_run_that_is_training():
    run = dw.train(epochs=1, name="held", **QUICK)
    with run.run.lock():  # as a process training it would hold it
        with pytest.raises(DeepworksError, match=r"Run 'runs/held' is being trained by another process \(pid \d+\)\. "
                                                 r"Wait for it to finish"):
            dw.train(resume="runs/held", progress=False)
    dw.train(resume="runs/held", progress=False)  # released when it ends, however it ends


def test_runs_started_at_the_same_moment_never_collide(tmp_path):
    made, errors = [], []

    def create():
        try:
            for _ in range(40):
                made.append(Run.create(tmp_path / "runs", "same").name)
        except Exception as err:  # noqa: BLE001 - any error is the failure
            errors.append(err)

    workers = [threading.Thread(target=create) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(made) == 240 and len(set(made)) == 240


def test_a_full_disk_keeps_the_last_checkpoint_and_the_resume_gives_the_same_weights(monkeypatch, capsys):
    whole = dw.train(epochs=4, name="whole", **QUICK)
    real_fsync, writes = os.fsync, {"n": 0}

    def full(fd):
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            writes["n"] += 1
            if writes["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    assert main(["train", "--model", "mlp", "--depth", "1", "--width", "32", "--no-baseline", "--epochs", "4",
                 "--name", "full", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The disk is full: 'runs/full/checkpoint.pt' could not be written") and (
        "The last good checkpoint is kept: free some space, then continue with: deepworks train --resume runs/full"
        in err), err
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert torch.load("runs/full/checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not [p for p in Path("runs/full").iterdir() if p.name.endswith(".tmp")]
    resumed = dw.train(resume="runs/full", progress=False)
    assert_same_weights(weights(whole.run.path), weights(resumed.run.path))


def test_weights_and_checkpoints_reach_the_disk_before_they_replace_the_old_files(monkeypatch):
    synced, real_fsync = [], os.fsync

    def watch(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watch)
    dw.train(epochs=1, **QUICK)
    for name in ("checkpoint.pt", "best.safetensors", "model.safetensors", "results.json", "config.yaml"):
        assert any(s.startswith(f".{name}.") for s in synced), name


def test_ctrl_c_during_the_final_test_says_how_to_finish_and_the_resume_finishes(monkeypatch, capsys):
    from deepworks.tasks.image_report import ImageReport

    whole = dw.train(epochs=2, name="whole", **QUICK)
    finish = ImageReport.finish

    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ImageReport, "finish", interrupted)
    assert main(["train", "--model", "mlp", "--depth", "1", "--width", "32", "--no-baseline", "--epochs", "2",
                 "--name", "cut", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert ("Interrupted while testing the model and writing its report. Training had finished and its weights are "
            "saved; finish the test and report with: deepworks train --resume runs/cut") in err
    monkeypatch.setattr(ImageReport, "finish", finish)
    resumed = dw.train(resume="runs/cut", progress=False)
    assert resumed.results["test"]["accuracy"] == whole.results["test"]["accuracy"]
    assert_same_weights(weights(whole.run.path), weights(resumed.run.path))


def test_temporary_files_of_a_killed_write_are_removed_when_the_run_is_next_opened():
    run = dw.train(epochs=1, name="k", **QUICK)
    for leftover in (".checkpoint.pt.abc123.tmp", ".best.safetensors.x.tmp", "report/.index.html.y.tmp"):
        (run.run.path / leftover).write_bytes(b"half a file")
    dw.train(resume="runs/k", progress=False)
    assert not list(run.run.path.rglob("*.tmp"))
    with run.run.lock():  # while another process trains it, its writes in progress are left alone
        (run.run.path / ".model.safetensors.z.tmp").write_bytes(b"half a file")
        dw.load("runs/k")
        assert list(run.run.path.rglob("*.tmp"))
    dw.load("runs/k")
    assert not list(run.run.path.rglob("*.tmp"))


def test_a_metrics_line_that_is_not_a_record_is_skipped_with_a_warning(capsys):
    dw.train(epochs=2, name="m", **QUICK)
    with open("runs/m/metrics.jsonl", "a") as f:
        f.write("[1, 2]\n")
    with pytest.warns(RuntimeWarning, match=r"metrics.jsonl': line\(s\) \d+ are not JSON records and were skipped"):
        rows = dw.runs()
    assert rows[0]["epochs"] == "2/2" and rows[0]["status"] == "finished"


def test_resuming_with_the_run_that_started_it_refuses_changes_before_writing_anything():
    run = dw.train(epochs=1, name="r", **QUICK)
    config = (run.run.path / "config.yaml").read_text()
    with pytest.raises(DeepworksError, match=r"these settings cannot change: --epochs \(1 -> 3\), --lr \(0.01 -> 0.5\)"
                                             r"\. A resume may change only --device, --data-dir.* To train for more "
                                             r"epochs, start a new run with the same settings: deepworks train "
                                             r"--config runs/r/config.yaml --epochs 3\."):
        dw.train(resume="runs/r", epochs=3, lr=0.5, progress=False)
    assert (run.run.path / "config.yaml").read_text() == config
    dw.train(resume="runs/r", progress=False, top_k=2)  # what is measured after training may change


def test_what_data_cannot_be_is_told_what_data_can_be():
    import numpy as np

    with pytest.raises(DeepworksError, match=r"data= takes the path of a folder, CSV, .npz or text file, a built-in "
                                             r"name, or arrays as \(x, y\) or \(x, y, class_names\)\. Received: a int\."):
        dw.train(data=42)
    with pytest.raises(DeepworksError, match=r"Received: a tuple of 4\."):
        dw.train(data=(np.zeros(3),) * 4)


def test_arrays_train_resume_and_evaluate_like_a_file(capsys):
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images * 16).astype("uint8"), digits.target
    trained = dw.train(data=(x, y), model="mlp", epochs=3, baseline=False, progress=False)
    assert trained.run.name == "arrays-mlp" and trained.results["test"]["accuracy"] > 0.85
    assert dw.evaluate(trained.run.path)["accuracy"] == pytest.approx(trained.results["test"]["accuracy"])
    again = dw.train(data=(torch.from_numpy(x), torch.from_numpy(y), [f"digit {i}" for i in range(10)]), model="mlp",
                     epochs=1, baseline=False, progress=False)
    assert again.classes[3] == "digit 3"
    with pytest.raises(DeepworksError, match=r"^data=\(x, y\): x has 1797 images but y has 10 labels"):
        dw.train(data=(x, y[:10]), progress=False)
    with pytest.raises(DeepworksError, match=r"x must be a numeric array\. Received: an array of Python objects"):
        dw.train(data=(np.array([[1, 2], [3]], dtype=object), y[:2]), progress=False)


def test_a_misspelt_setting_gets_the_close_match_not_the_whole_list():
    with pytest.raises(DeepworksError, match=r"^Unknown setting 'epoch' in settings\. Did you mean 'train\.epochs'( or 'train\.step_epochs')?\?$"):
        dw.train(epoch=3)
    with pytest.raises(DeepworksError, match=r"Unknown setting 'lernrate' in settings\. See a run's config.yaml"):
        dw.train(lernrate=3)


def test_the_runs_table_keeps_its_columns_for_every_task(tmp_path, capsys):
    (tmp_path / "p.tsv").write_text("".join(f"a{i} b\tb a{i}\n" for i in range(40)))
    dw.train(task="translate", data=str(tmp_path / "p.tsv"), width=8, embed_size=8, epochs=1, min_freq=1, progress=False)
    dw.train(epochs=1, **QUICK)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = [[line.index(word) for word in line.split()[:2]] for line in lines]
    assert starts[1][1] == starts[2][1] == starts[0][1]  # the task column starts at the same place on every row
    status = [line.rindex("finished") for line in lines[1:]]
    assert len(set(status)) == 1


def test_text_generation_has_one_default_temperature():
    import inspect

    from deepworks.api import Trained
    from deepworks.cli import build_parser

    python = inspect.signature(Trained.generate).parameters["temperature"].default
    cli = build_parser().parse_args(["generate", "RUN"]).temperature
    assert python == cli == 0.8


def test_results_say_how_long_the_whole_command_took(capsys):
    assert main(["train", "--model", "mlp", "--epochs", "1", "--no-baseline", "--quiet", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert fit["total_seconds"] >= fit["wall_seconds"] >= fit["train_seconds"] > 0

"""Training across processes with torchrun, Ray and Spark: two local processes, bound to 127.0.0.1, against the
single-process run at the same global batch (scikit-learn's digits, an MLP: no batch norm, no dropout)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import weights

import deepworks as dw

TESTS = Path(__file__).resolve().parent
SETTINGS = dict(model="mlp", epochs=3, baseline=False, batch_size=128)
TASK = "dist_tasks:CheckedImages"  # checks inside the workers that their parameters stay identical


@pytest.fixture(autouse=True)
def workers_find_the_test_task(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.fixture(scope="session")
def one_process(tmp_path_factory):
    """The one-process run every distributed run here must match: trained once per test run."""
    from conftest import made_once

    def make(root):
        dw.train(name="single", task=TASK, runs_dir=str(root / "runs"), progress=False, **SETTINGS)

    return dw.load(made_once(tmp_path_factory, "distributed-single", make) / "runs" / "single")


def relative_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12)) for k in a)


def test_a_worker_killed_mid_epoch_restarts_the_group_from_the_checkpoint(one_process, monkeypatch, capfd):
    """Rank 1 killed early in the second epoch: the run ends as the one-process run does, and one line (no torch
    elastic traceback) says which worker died and that the group restarted."""
    from deepworks.cli import main

    monkeypatch.setenv("DIST_KILL_AT", "14")  # rank 1, in the second epoch (12 steps an epoch)
    assert main(["train", "--task", TASK, "--model", "mlp", "--epochs", "3", "--no-baseline", "--batch-size", "128",
                 "--engine", "torchrun", "--nproc", "2", "--max-restarts", "1", "--name", "killed", "--quiet",
                 "--json"]) == 0
    out, err = capfd.readouterr()
    killed = json.loads(out)
    assert abs(killed["test"]["accuracy"] - one_process.results["test"]["accuracy"]) <= 0.003
    assert relative_difference(weights(killed["run"]), weights(one_process.run.path)) < 1e-4
    epochs = [r["epoch"] for r in dw.api.Run(killed["run"]).metrics() if r.get("kind") == "epoch"]
    assert epochs == [1, 2, 3]  # the lost epoch's records were dropped, then logged once by the restarted group
    assert ("The worker 1 died (SIGKILL); the group restarts from the run's last checkpoint (restart 1 of 1)."
            in err.splitlines())
    assert "Traceback" not in err and "[rank" not in err and "elastic" not in err, err


def test_a_worker_killed_without_restarts_ends_the_run_with_one_line_naming_it(monkeypatch, capfd):
    from deepworks.cli import main

    monkeypatch.setenv("DIST_KILL_AT", "14")
    assert main(["train", "--task", TASK, "--model", "mlp", "--epochs", "2", "--no-baseline", "--batch-size", "128",
                 "--engine", "torchrun", "--nproc", "2", "--name", "lost", "--quiet"]) == 3
    err = capfd.readouterr().err
    assert "Traceback" not in err and "[rank" not in err and "elastic" not in err, err
    assert err.strip().splitlines()[-1] == (
        "error: The torchrun run failed (worker 1 died (SIGKILL)). The last good checkpoint is kept; continue with: "
        "deepworks train --resume runs/lost --engine torchrun")


def test_kill_int_to_the_launcher_alone_stops_the_workers_with_the_checkpoint_kept(one_process, monkeypatch, capfd):
    """What `timeout -s INT`, a supervisor or the web UI's Stop button send: SIGINT to the launcher's pid only (here
    this test's process, which runs the launcher). The workers stop at one step, save, and the run resumes exactly."""
    from deepworks.cli import main

    monkeypatch.setenv("DIST_INTERRUPT_AT", "15")
    monkeypatch.setenv("DIST_INTERRUPT", str(os.getpid()))
    assert main(["train", "--task", TASK, "--model", "mlp", "--epochs", "3", "--no-baseline", "--batch-size", "128",
                 "--engine", "torchrun", "--nproc", "2", "--name", "cut", "--quiet"]) == 130
    monkeypatch.delenv("DIST_INTERRUPT_AT")
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1] == ("Interrupted at epoch 2, step 8; the state is saved. "
                                            "Resume with: deepworks train --resume runs/cut")
    assert "Traceback" not in err, err
    resumed = dw.train(resume="runs/cut", engine="local", progress=False)
    assert relative_difference(weights(resumed.run.path), weights(one_process.run.path)) < 1e-4


def test_a_terminal_ctrl_c_of_a_torchrun_run_says_interrupted_in_one_line(tmp_path):
    """Ctrl-C in a terminal reaches the launcher's whole process group (the launcher and torchrun's agent)."""
    env = {**os.environ, "DIST_INTERRUPT_AT": "15", "DIST_INTERRUPT": "group"}
    done = subprocess.run([sys.executable, "-m", "deepworks", "train", "--task", TASK, "--model", "mlp", "--epochs",
                           "3", "--no-baseline", "--batch-size", "128", "--engine", "torchrun", "--nproc", "2",
                           "--name", "ctrl-c", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          start_new_session=True, timeout=300)
    assert done.returncode == 130, done.stderr
    said = [line for line in done.stderr.splitlines() if line and not line.startswith("epoch 1/3 ")]
    assert said == ["Interrupted at epoch 2, step 8; the state is saved. Resume with: deepworks train --resume "
                    "runs/ctrl-c"], done.stderr


def test_a_master_port_in_use_is_named_before_anything_starts(tmp_path, capsys):
    import socket

    from deepworks.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["train", "--model", "mlp", "--epochs", "1", "--no-baseline", "--engine", "torchrun",
                     "--nproc", "2", "--master-port", str(port), "--name", "port", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: Port {port} is in use on this machine: another program listens there. Expected a free port for the "
        f"rendezvous. Received --master-port {port}. Choose another with --master-port, or leave it out and "
        f"deepworks picks a free one.\n")
    assert not Path("runs/port").exists()  # refused before the run was created


def test_two_torchrun_runs_at_once_never_collide_on_ports_and_match_one_process(one_process, tmp_path):
    """Two runs started together: one of two processes, which picks its own free ports and ends with the weights and
    test accuracy of the one-process run at the same global batch, every epoch logged once; and the README's
    two-machine commands, both nodes on this machine, where node 0 writes the run and node 1 says where it is."""
    from deepworks.training.distributed import free_port

    single = one_process
    env = {**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"]}
    common = [sys.executable, "-m", "deepworks", "train", "--no-baseline", "--engine", "torchrun", "--quiet", "--json"]
    local = common + ["--task", TASK, "--model", "mlp", "--epochs", "3", "--batch-size", "128", "--nproc", "2",
                      "--name", "at-once"]
    readme = common + ["--model", "mlp", "--epochs", "2", "--nproc", "1", "--nnodes", "2", "--master-addr",
                       "127.0.0.1", "--master-port", str(free_port()), "--name", "two"]
    started = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
               for command in [local] + [readme + ["--node-rank", str(rank), "--runs-dir",
                                                   str(tmp_path / f"machine-{rank}")] for rank in (0, 1)]]
    outs = []
    for p in started:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out))
    two = dw.load(outs[0]["run"])
    assert two.results["fit"]["processes"] == 2 and single.results["fit"]["processes"] == 1
    assert abs(two.results["test"]["accuracy"] - single.results["test"]["accuracy"]) <= 0.003
    assert relative_difference(weights(two.run.path), weights(single.run.path)) < 1e-4
    epochs = [r for r in two.run.metrics() if r.get("kind") == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]  # one writer: each epoch logged once
    assert outs[1]["fit"]["processes"] == 2 and outs[1]["test"]["accuracy"] > 0.8
    assert outs[2] == {"node_rank": 1, "written_on": "machine 0 (127.0.0.1)"}
    assert (tmp_path / "machine-0" / "two" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ray", "spark"])
def test_ray_and_spark_run_the_same_worker_match_one_process_and_resume_a_run(engine, one_process, capfd):
    """One engine start each (Ray's or Spark's takes tens of seconds): a run cut on one process resumes on two
    through the engine, whose workers run the same worker function as torchrun's, and ends with the weights of the
    uncut one-process run (torchrun resumes a group of two from its checkpoint in the killed-worker test, and one
    process resumes a group's run in the kill -INT test). Ray says each epoch once (it printed each twice) and
    nothing of its own."""
    from conftest import ctrl_c_at_step
    from dist_tasks import CheckedImages

    from deepworks.training.loop import Interrupted

    single = one_process
    with ctrl_c_at_step(CheckedImages, 15), pytest.raises(Interrupted):
        dw.train(name="cut", task=TASK, progress=False, **SETTINGS)
    capfd.readouterr()
    resumed = dw.train(resume="runs/cut", engine=engine, nproc=2)
    assert resumed.results["fit"]["engine"] == engine and resumed.results["fit"]["processes"] == 2
    assert abs(resumed.results["test"]["accuracy"] - single.results["test"]["accuracy"]) <= 0.003
    assert relative_difference(weights(resumed.run.path), weights(single.run.path)) < 1e-4
    if engine == "ray":
        said = "".join(capfd.readouterr())
        assert [line[:9] for line in said.splitlines() if "epoch " in line] == ["epoch 2/3", "epoch 3/3"], said
        assert "Failed to query" not in said and "Requesting resources" not in said, said

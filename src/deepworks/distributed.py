"""Training across processes and machines, on the engines users already run: torchrun, Ray Train and Spark.

All three run one and the same worker function, `worker(run_path)`, in every process: it joins the
torch.distributed group (gloo on CPUs, NCCL on CUDA), trains the run in `run_path` with a DistributedEngine
(engine.py) and returns. The engines differ only in how the processes are started and find each other:

    deepworks train --engine torchrun --nproc 2          # PyTorch's launcher (torch elastic), this machine
    deepworks train --engine torchrun --nproc 2 --nnodes 2 --node-rank 0 --master-addr 10.0.0.1   # on machine 0
    deepworks train --engine ray --nproc 2               # Ray Train's TorchTrainer (a Ray cluster, or one here)
    deepworks train --engine spark --nproc 2             # Spark's TorchDistributor

The launching process creates the run folder, holds its lock and waits; only the process of rank 0 writes into
it. Semantics: --batch-size is the global batch, each process takes its contiguous part of every batch of the
epoch's seeded order, the gradients are averaged (weighted by samples) before each step, metric sums are added
over the processes, and the epoch's record (validation on rank 0) is shared so that early stopping decides alike
everywhere. Batch norm keeps its statistics per process on CPUs (SyncBatchNorm runs only on GPUs); rank 0's are
saved. A worker that finds a checkpoint in the run goes on from it: that is how `--max-restarts` and `--resume`
(with any number of processes) continue a run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from .config import Config
from .errors import ConfigError, DeepworksError, TrainingError
from .run import Run

WORKER_ENV = "DEEPWORKS_WORKER"  # set in every worker process, so that it trains instead of launching again


def in_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1: two runs on one machine never share a rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(cfg: Config, one_machine: bool) -> dict:
    """The environment of the worker processes: their share of the free cores, and, when they all run on this
    machine, gloo kept on the loopback interface."""
    from . import threads

    env = dict(os.environ)
    env[WORKER_ENV] = "1"
    if threads.ENV not in env:
        env[threads.ENV] = str(max(1, threads.configure() // max(1, cfg.engine.nproc)))
    env.setdefault("OMP_NUM_THREADS", env[threads.ENV])
    if one_machine:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


def launch(run: Run, cfg: Config) -> None:
    """Train the run in worker processes started by the engine --engine names; return when they are done."""
    launchers = {"torchrun": launch_torchrun, "ray": launch_ray, "spark": launch_spark}
    launchers[cfg.engine.name](run, cfg)


def failed(engine: str, run: Run, detail: str) -> TrainingError:
    kept = (f" The last good checkpoint is kept; continue with: deepworks train --resume {run.path} --engine {engine}"
            if run.checkpoint_file.exists() else "")
    return TrainingError(f"The {engine} run failed ({detail}); the workers' messages are above.{kept}")


# --- torchrun ---------------------------------------------------------------------------------
def torchrun_command(run: Run, cfg: Config) -> list[str]:
    e = cfg.engine
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={e.nproc}",
           f"--max-restarts={e.max_restarts}"]
    if e.nnodes == 1:
        cmd += ["--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{e.master_port or free_port()}"]
    else:
        cmd += [f"--nnodes={e.nnodes}", f"--node-rank={e.node_rank}", f"--master-addr={e.master_addr}",
                f"--master-port={e.master_port or 29500}"]
    return cmd + ["-m", "deepworks.distributed", str(run.path.resolve())]


def launch_torchrun(run: Run, cfg: Config) -> None:
    code = subprocess.call(torchrun_command(run, cfg), env=worker_env(cfg, one_machine=cfg.engine.nnodes == 1))
    if code != 0:
        raise failed("torchrun", run, f"exit status {code}")


# --- Ray Train --------------------------------------------------------------------------------
def ray_worker(config: dict) -> None:
    worker(config["run"])


def launch_ray(run: Run, cfg: Config) -> None:
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError:
        raise ConfigError('--engine ray needs Ray Train. Install it with: pip install "deepworks[ray]"') from None
    env = worker_env(cfg, one_machine=not os.environ.get("RAY_ADDRESS"))
    passed = {k: env[k] for k in (WORKER_ENV, "DEEPWORKS_THREADS", "OMP_NUM_THREADS", "GLOO_SOCKET_IFNAME",
                                  "PYTHONPATH") if k in env}
    started = False
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):  # a cluster the user runs
            ray.init(runtime_env={"env_vars": passed})
        else:  # a Ray of our own on this machine, bound to the loopback interface
            ray.init(num_cpus=max(cfg.engine.nproc, os.cpu_count() or 1), include_dashboard=False,
                     _node_ip_address="127.0.0.1", runtime_env={"env_vars": passed}, log_to_driver=True,
                     configure_logging=False)
        started = True
    try:
        import torch

        trainer = TorchTrainer(ray_worker, train_loop_config={"run": str(run.path.resolve())},
                               scaling_config=ScalingConfig(num_workers=cfg.engine.nproc,
                                                            use_gpu=torch.cuda.is_available() and
                                                            cfg.train.device != "cpu"),
                               run_config=RunConfig(storage_path=str((run.path / ".ray").resolve()), name="train"))
        result = trainer.fit()
        if getattr(result, "error", None) is not None:
            raise failed("ray", run, str(result.error).strip().splitlines()[0])
    except DeepworksError:
        raise
    except Exception as err:  # Ray wraps a worker's error in its own
        raise failed("ray", run, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    finally:
        if started:
            ray.shutdown()


# --- Spark's TorchDistributor -------------------------------------------------------------------
def spark_worker(run_path: str) -> None:
    os.environ[WORKER_ENV] = "1"
    worker(run_path)


def launch_spark(run: Run, cfg: Config) -> None:
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError('--engine spark needs pyspark. Install it with: pip install "deepworks[spark]"') from None
    import torch

    spark = SparkSession.getActiveSession()
    started = spark is None
    if started:  # a Spark of our own on this machine; with SPARK_MASTER (or spark-submit), the user's cluster
        master = os.environ.get("SPARK_MASTER", f"local[{cfg.engine.nproc}]")
        spark = (SparkSession.builder.master(master).appName(f"deepworks {run.name}")
                 .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.ui.enabled", "false").getOrCreate())
    local = spark.sparkContext.master.startswith("local")
    env = worker_env(cfg, one_machine=local)
    keys = [k for k in ("DEEPWORKS_THREADS", "OMP_NUM_THREADS", "GLOO_SOCKET_IFNAME") if k in env]
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})  # TorchDistributor's processes inherit the driver's environment
    try:
        TorchDistributor(num_processes=cfg.engine.nproc, local_mode=local,
                         use_gpu=torch.cuda.is_available() and cfg.train.device != "cpu").run(
            spark_worker, str(run.path.resolve()))
    except DeepworksError:
        raise
    except Exception as err:
        raise failed("spark", run, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if started:
            spark.stop()


# --- the worker all engines run -----------------------------------------------------------------
def join_group(backend: str) -> None:
    """init_process_group from torchrun's environment, with the keys of each attempt under their own prefix: after
    a restart, gloo would otherwise read the lost workers' addresses from the store and wait for them."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    timeout = timedelta(minutes=10)
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent_store, timeout=timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"deepworks/attempt-{attempt}", store), rank=rank,
                            world_size=world, timeout=timeout)


def worker(run_path: str | Path) -> None:
    """Join the process group (unless the engine did: Ray does), train the run, leave the group."""
    import torch
    import torch.distributed as dist

    from . import api

    joined = not dist.is_initialized()
    if joined:
        cfg = Config.load(Path(run_path) / "config.yaml")
        cuda = torch.cuda.is_available() and cfg.train.device != "cpu"
        join_group("nccl" if cuda else "gloo")
    try:
        api.train_worker(run_path)
    finally:
        if joined:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """`python -m deepworks.distributed RUN`: what torchrun starts in each process."""
    argv = sys.argv[1:] if argv is None else argv
    os.environ[WORKER_ENV] = "1"
    try:
        worker(argv[0])
    except DeepworksError as err:
        print(f"error (rank {os.environ.get('RANK', '?')}): {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""torchrun's agent (torch elastic), as `deepworks train --engine torchrun` runs it: `python -m deepworks.training.elastic_agent
TORCHRUN-ARGUMENTS`, in a process of its own beside the launcher (distributed.py).

It is torchrun, with three differences a user sees. Its log lines and tracebacks are kept quiet: when a worker is
lost, one line says which worker and how (its signal or exit status), and whether the group restarts from the run's
last checkpoint (--max-restarts) or the run ends; a worker's own error (a bug) still shows its traceback, but not
the tracebacks of the workers that merely lost their connection to it. It ignores SIGINT: the launcher passes a
Ctrl-C on to the workers, which stop at the same step and save the checkpoint. And once the launcher has asked for
a stop, it restarts no group. The workers and the launcher talk through the folder in $DEEPWORKS_LAUNCH: pid-RANK
(each worker's process id), traceback-RANK (a worker's error), stop (the launcher's request) and failure (how the
run ended, for the launcher's message).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from .distributed import LAUNCH_ENV, error_line, read_text

LOST_PEER = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Connection refused")


def quiet_torch_elastic() -> None:
    """Import torchrun's modules with their loggers (which read $LOGLEVEL once) set to critical only."""
    before = os.environ.get("LOGLEVEL")
    os.environ["LOGLEVEL"] = "CRITICAL"
    try:
        import torch.distributed.elastic.rendezvous.c10d_rendezvous_backend  # noqa: F401
        import torch.distributed.elastic.rendezvous.dynamic_rendezvous  # noqa: F401
        import torch.distributed.run  # noqa: F401
    finally:
        if before is None:
            os.environ.pop("LOGLEVEL")
        else:
            os.environ["LOGLEVEL"] = before
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def suspicion(failure, traceback_text: str) -> int:
    """How likely a failed worker is the one that failed first (lowest first): one killed from outside (SIGKILL, a
    crash), then one with an error of its own; the others lost their connection to it or were stopped by the agent."""
    if failure.exitcode < 0 and failure.signal_name() not in ("SIGTERM", "SIGINT"):
        return 0
    if traceback_text and not any(s in traceback_text for s in LOST_PEER):
        return 1
    return 2 if failure.exitcode not in (1, -signal.SIGTERM) else 3


def describe(failure, traceback_text: str) -> str:
    if failure.exitcode < 0:
        return f"died ({failure.signal_name()})"
    if traceback_text:
        return f"failed ({traceback_text.strip().splitlines()[-1]})"
    if failure.exitcode == 2:
        return "stopped with the error printed above"
    return f"exited with status {failure.exitcode}"


def report_failure(agent, failures: dict, talk: Path) -> None:
    """One line for a failed group: the worker that failed first, and what happens next."""
    texts = {rank: read_text(talk / f"traceback-{rank}") for rank in failures}
    rank = min(sorted(failures), key=lambda r: suspicion(failures[r], texts[r]))
    if suspicion(failures[rank], texts[rank]) == 1:
        print(texts[rank], file=sys.stderr)  # a bug keeps its traceback
    for path in talk.glob("traceback-*"):
        path.unlink(missing_ok=True)
    what = f"worker {rank} {describe(failures[rank], texts[rank])}"
    if (talk / "stop").exists():
        agent._remaining_restarts = 0  # the launcher asked for a stop: no restart
        return
    left, most = agent._remaining_restarts, agent._worker_group.spec.max_restarts
    if left > 0:
        print(f"The {what}; the group restarts from the run's last checkpoint (restart {most - left + 1} of "
              f"{most}).", file=sys.stderr, flush=True)
    else:
        (talk / "failure").write_text(what)


def watch_failures(talk: Path) -> None:
    """Have the agent report each failed group as it finds it, before it restarts the group or gives up."""
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent

    monitor = getattr(LocalElasticAgent, "_monitor_workers", None)
    if monitor is None:  # a torch whose agent is built otherwise: its own log lines stay
        return

    def monitored(self, worker_group):
        result = monitor(self, worker_group)
        if result.state.name == "FAILED" and result.failures:
            report_failure(self, result.failures, talk)
        return result

    LocalElasticAgent._monitor_workers = monitored


def main(args: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher forwards Ctrl-C to the workers
    quiet_torch_elastic()
    from torch.distributed.run import parse_args, run

    talk = Path(os.environ[LAUNCH_ENV])
    watch_failures(talk)
    try:
        run(parse_args(args))
    except Exception as err:  # noqa: BLE001 - torch elastic's errors; the launcher says how the run ended
        failure = talk / "failure"
        if not failure.exists():
            failure.write_text(error_line(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The GAN's balance watch: a training callback (training/callbacks.py) that the recipe (tasks/gan.py) returns from
`callbacks()`.

Every TRACE_EVERY optimizer steps it traces the losses and D(real) / D(fake) of the step, and checks the last ten
points: a discriminator that wins outright, losses that run away. After each epoch's validation it checks the
samples' diversity (mode collapse, over all classes and within one), then logs the epoch's trace points and
warnings to metrics.jsonl, where the report draws and lists them. Its trace and warnings are per-run state, saved in
the checkpoint with `state_dict`, so a run stopped mid-epoch resumes with the same trace.

It reads from the recipe (`trainer.task`) what the update itself keeps: `steps` (the discriminator's optimizer
steps so far), `latest` (the last step's losses and scores, as tensors), and `least_varied` (the class whose samples
the last evaluation found least varied).
"""

from __future__ import annotations

import warnings

from ..config import Config

TRACE_EVERY = 20  # steps between two points of the loss / D(x) trace
EVIDENCE_STEPS = 500  # optimizer steps before low diversity means collapse rather than a generator still at its start


def scores_are_probabilities(cfg: Config) -> bool:
    """With the BCE loss, sigmoid(D(x)) is D's probability that x is real; hinge and wgan-gp scores are unbounded, so
    the trace shows their raw means and "D wins outright" (D(fake) near 0) cannot be read from them."""
    return cfg.train.gan_loss == "bce"


class GanWarning(UserWarning):
    """The two networks are out of balance."""


def remedies(cfg: Config, *options: str) -> str:
    """The options worth trying, less those the run already uses."""
    t, m = cfg.train, cfg.model
    used = {"--spectral-norm": m.spectral_norm, "--gan-loss wgan-gp": t.gan_loss == "wgan-gp",
            "--label-smoothing 0.1": t.label_smoothing > 0}
    left = [o for o in options if not used.get(o)] or list(options[-1:])
    return ", ".join(left[:-1]) + (" or " if len(left) > 1 else "") + left[-1]


class GanBalance:
    """Trace the two networks' losses and scores, warn when they are out of balance or the samples collapse, and
    log both at the end of each epoch.

    Each kind of problem is warned about once per run, when it starts; the log records the epoch each episode
    starts ('warning') and the first epoch checked without it ('recovered'), which the report turns into "from
    epoch 20, recovered by epoch 31" or "still at the end"."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.epoch = 0  # the epoch under way, from 1
        self.trace: list[dict] = []  # this epoch's trace points, logged at its end
        self.window: list[dict] = []  # the last 10 trace points, across epochs, that the balance checks read
        self.alerts: list[tuple[str, str]] = []  # episodes started this epoch, (kind, message), logged at its end
        self.seen: set[str] = set()  # kinds found this epoch
        self.checked: set[str] = set()  # kinds checked this epoch (with enough evidence to say yes or no)
        self.open: dict[str, int] = {}  # kinds under way: the epoch each started
        self.warned: set[str] = set()  # kinds the user was warned about (once each)

    # --- events ---------------------------------------------------------------------------------
    def on_epoch_start(self, trainer) -> None:
        self.epoch = trainer.epoch + 1
        if trainer.step == 0:  # a new epoch; a run resumed mid-epoch goes on with the trace its checkpoint kept
            self.start_epoch()

    def on_step_end(self, trainer) -> None:
        task = trainer.task
        if task.steps % TRACE_EVERY == 0:
            self.record_trace(task.steps, **{k: float(v) for k, v in task.latest.items()})

    def on_epoch_end(self, trainer, record: dict) -> None:
        """Check the samples' diversity, close the problems this epoch no longer shows, then log the epoch's trace,
        new problems and recoveries (the main process only, which validated)."""
        if not trainer.engine.is_main:
            return
        task, epoch = trainer.task, record["epoch"]
        judged = task.steps >= EVIDENCE_STEPS  # before that, samples alike are a generator still near its start
        if judged:
            self.check_collapse(record.get("val_diversity"), task.least_varied, task.meta["classes"])
        for point in self.trace:
            trainer.run.log(kind="trace", epoch=epoch, **point)
        for kind, message in self.alerts:
            trainer.run.log(kind="warning", epoch=epoch, problem=kind, message=message)
        for kind in [k for k in self.open if k in self.checked and k not in self.seen]:
            trainer.run.log(kind="recovered", epoch=epoch, problem=kind, start=self.open.pop(kind))

    # --- checks ---------------------------------------------------------------------------------
    def start_epoch(self) -> None:
        self.trace, self.alerts, self.seen, self.checked = [], [], set(), set()

    def record_trace(self, step: int, d_loss: float, g_loss: float, d_real: float, d_fake: float) -> None:
        point = {"step": step, "d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}
        self.trace.append(point)
        self.window = [*self.window[-9:], point]
        self.check_balance()

    def check_balance(self) -> None:
        """Warn when the last 10 trace points show the networks out of balance."""
        last = self.window
        if len(last) < 10:
            return
        self.checked |= {"winning", "diverging"}
        if scores_are_probabilities(self.cfg) and max(p["d_fake"] for p in last) < 0.05:
            self.alert("winning", f"The discriminator is winning outright: D(fake) stayed below 0.05 for "
                       f"{10 * TRACE_EVERY} steps, so the generator learns little. Try "
                       f"{remedies(self.cfg, '--label-smoothing 0.1', 'a lower --lr-d', '--spectral-norm')}.")
        total = [abs(p["d_loss"]) + abs(p["g_loss"]) for p in last]
        if total[-1] > 20 and all(b >= a for a, b in zip(total[-5:], total[-4:])):
            self.alert("diverging", f"The losses are running away (D {last[-1]['d_loss']:.3g}, G {last[-1]['g_loss']:.3g} and "
                       f"rising). Try {remedies(self.cfg, 'a lower --lr and --lr-d', '--gan-loss wgan-gp')}.")

    def check_collapse(self, spread: float | None, least: tuple[int, float] | None, classes: list[str]) -> None:
        """Warn when the samples are far less varied than the real images (`spread`, the validation diversity), or
        those of one class (`least`: its index and diversity) are."""
        if spread is not None:
            self.checked.add("collapse")
            if spread < 0.5:
                self.alert("collapse", f"Mode collapse: the samples are {spread:.0%} as varied as the real images, "
                           f"so the generator makes few kinds of image. Try "
                           f"{remedies(self.cfg, '--spectral-norm', '--gan-loss wgan-gp', 'a lower --lr')}.")
        if least is not None and "collapse" not in self.seen:
            self.checked.add("class-collapse")
            if least[1] < 0.5:
                self.alert("class-collapse", f"Mode collapse within a class: the samples of class "
                           f"{classes[least[0]]} are {least[1]:.0%} as varied as its real images, so asking for that "
                           f"class gives nearly the same image each time. Try "
                           f"{remedies(self.cfg, '--spectral-norm', '--gan-loss wgan-gp', 'a lower --lr')}.")

    def alert(self, kind: str, message: str) -> None:
        """Open an episode of this problem unless one is under way, and warn the first time in the run: the CLI
        prints it under the progress bar, the report lists it with its epochs."""
        self.seen.add(kind)
        if kind in self.open:
            return
        self.open[kind] = self.epoch
        self.alerts.append((kind, message))
        if kind not in self.warned:
            self.warned.add(kind)
            warnings.warn(f"{message} (from epoch {self.epoch})", GanWarning, stacklevel=2)

    # --- the checkpoint ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"trace": self.trace, "window": self.window, "alerts": self.alerts, "seen": sorted(self.seen),
                "checked": sorted(self.checked), "open": self.open, "warned": sorted(self.warned)}

    def load_state_dict(self, state: dict) -> None:
        self.trace, self.alerts = list(state["trace"]), [tuple(a) for a in state["alerts"]]
        self.window = list(state.get("window", self.trace[-10:]))  # (checkpoints from before keep the trace only)
        self.seen, self.checked = set(state.get("seen", ())), set(state.get("checked", ()))
        self.open, self.warned = dict(state.get("open", {})), set(state.get("warned", ()))

"""Multi-task loss reweighting: per-task losses in, per-task weights out.

Every strategy keeps its state (baselines, windows, histories) in ``state_dict()`` so a resumed
run computes exactly the weights the uninterrupted run would. All of them but ``uncertainty``
return weights that sum to the number of tasks ``K``, so ``equal`` (every weight 1) is plain
mixed training and the total loss of every strategy stays on the same scale. ``uncertainty``
learns its weights ``exp(-s_i)``: they start at 1 (sum ``K``) and are not renormalised, since
the ``+ s_i`` term of its loss is what keeps them from collapsing.

Strategies (``docs/training.md`` has the formulas and the choices):

* ``equal``: ``w = 1`` (MOE-WIRNet Table 7, "without any optimization strategy").
* ``rci``: MOE-WIRNet's relative convergence index alone, ``w = K softmax(eta / kappa)``.
* ``ori``: MOE-WIRNet 3.3, ``w = K softmax(eta * phi / kappa)`` with ``eta = L / H`` (EMA baseline)
  and ``phi = ln(L / L_opt)`` (running minimum); ``smoothing`` computes both from EMA-smoothed losses.
* ``unirain``: UniRain / CoBa slope-based ``w = K (AF * TBS + (1 - AF) * TSS)``.
* ``dwa``: dynamic weight averaging (Liu et al., CVPR 2019).
* ``uncertainty``: homoscedastic uncertainty weighting (Kendall et al., CVPR 2018), learnt.
* ``relative`` (not in the papers): ``w = K r^-p / sum r^-p`` with ``r`` an EMA of each task's
  *reference* loss, the loss of the unrestored input (``needs_reference``: the trainer passes it
  to :meth:`Relative.set_reference` before each :meth:`TaskWeighting.combine`).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..registry import Registry

__all__ = ["TaskWeighting", "Equal", "ConvergenceIndex", "UniRain", "DWA", "Uncertainty", "Relative", "WEIGHTINGS",
           "create_weighting", "softmax"]

_EPS = 1e-12


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - np.max(x))
    return z / z.sum()


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``0, 1, ..., n-1``."""
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


class TaskWeighting(nn.Module):
    """Base class. Subclasses implement :meth:`_weights` (``K`` losses -> ``K`` weights) and, when
    they keep state, :meth:`_state` / :meth:`_load`."""

    name = "base"
    #: True for strategies that also read each task's reference loss (the unrestored input's)
    needs_reference = False

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        if not tasks:
            raise ValueError("task weighting needs at least one task")
        self.tasks = list(tasks)
        self.steps = 0

    def update(self, losses: dict[str, float]) -> dict[str, float]:
        """Feed this iteration's per-task losses (floats); get this iteration's weights."""
        missing = [t for t in self.tasks if t not in losses]
        if missing:
            raise ValueError(f"no loss for task(s) {', '.join(missing)}")
        values = self._finite(losses, "loss")
        self.steps += 1
        weights = self._weights(values)
        return {t: float(w) for t, w in zip(self.tasks, weights)}

    def _finite(self, losses: dict[str, float], what: str) -> np.ndarray:
        values = np.array([float(losses[t]) for t in self.tasks], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            bad = [t for t, v in zip(self.tasks, values) if not np.isfinite(v)]
            raise FloatingPointError(f"non-finite {what} for task(s) {', '.join(bad)}")
        return values

    def _weights(self, losses: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def combine(self, losses: dict[str, torch.Tensor],
                values: dict[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted total of the per-task loss tensors.

        ``values`` are the losses the weights are computed from (in distributed training the
        all-reduced ones, so every rank gets the same weights); default: ``losses`` detached.
        """
        if values is None:
            values = {t: float(losses[t].detach()) for t in self.tasks}
        weights = self.update(values)
        return self._total(losses, weights), weights

    def _total(self, losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
        return sum(weights[t] * losses[t] for t in self.tasks)

    # exact resume: the strategy's running state travels inside state_dict()
    def _state(self) -> dict[str, Any]:
        return {}

    def _load(self, state: dict[str, Any]) -> None:
        pass

    def get_extra_state(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": self.tasks, "steps": self.steps, **self._state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name or list(state.get("tasks", [])) != self.tasks:
            raise ValueError(f"weighting state is for {state.get('name')!r} on tasks {state.get('tasks')}, "
                             f"not {self.name!r} on {self.tasks}")
        self.steps = int(state["steps"])
        self._load(state)


class Equal(TaskWeighting):
    """Plain mixed training: every task weighs 1."""

    name = "equal"

    def _weights(self, losses):
        return np.ones_like(losses)


class ConvergenceIndex(TaskWeighting):
    """MOE-WIRNet's convergence indices (section 3.3).

    ``H_t = m H_{t-1} + (1 - m) L_t`` (``H_1 = L_1``), ``eta_t = L_t / H_t`` (RCI),
    ``phi_t = ln(L_t / L_opt)`` with ``L_opt`` the running minimum including ``L_t`` (ACI, >= 0),
    ``w = K softmax(eta * phi / kappa)`` (ORI), or ``K softmax(eta / kappa)`` without ACI (RCI).
    Both ratios are taken with a tiny epsilon in numerator and denominator, so a zero loss gives
    ``eta = 1``, ``phi = 0`` instead of NaN.

    ``smoothing = s > 0`` (not in the paper) feeds the indices an EMA of the losses,
    ``Ltilde_t = s Ltilde_{t-1} + (1 - s) L_t`` (``Ltilde_1 = L_1``), instead of the raw
    batch losses: with one patch per task the raw ``phi`` mostly measures how hard this
    iteration's patch is, not how far the task is from its best.
    """

    def __init__(self, tasks, momentum: float = 0.9, kappa: float = 1.0, use_aci: bool = True,
                 smoothing: float = 0.0):
        super().__init__(tasks)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"weighting momentum must be in [0, 1), got {momentum}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"weighting smoothing must be in [0, 1), got {smoothing}")
        if kappa <= 0:
            raise ValueError(f"weighting kappa must be > 0, got {kappa}")
        self.momentum, self.kappa, self.use_aci, self.smoothing = momentum, kappa, use_aci, smoothing
        self.name = "ori" if use_aci else "rci"
        self.smoothed: np.ndarray | None = None
        self.baseline: np.ndarray | None = None
        self.best: np.ndarray | None = None

    def indices(self, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Update the state with ``losses``; return ``(eta, phi)``."""
        if self.smoothing:
            if self.smoothed is None:
                self.smoothed = losses.copy()
            else:
                self.smoothed = self.smoothing * self.smoothed + (1.0 - self.smoothing) * losses
            losses = self.smoothed
        if self.baseline is None:
            self.baseline, self.best = losses.copy(), losses.copy()
        else:
            self.baseline = self.momentum * self.baseline + (1.0 - self.momentum) * losses
            self.best = np.minimum(self.best, losses)
        eta = (losses + _EPS) / (self.baseline + _EPS)
        phi = np.log((losses + _EPS) / (self.best + _EPS))
        return eta, phi

    def _weights(self, losses):
        eta, phi = self.indices(losses)
        score = eta * phi if self.use_aci else eta
        return len(losses) * softmax(score / self.kappa)

    def _state(self):
        if self.baseline is None:
            return {}
        state = {"baseline": self.baseline.tolist(), "best": self.best.tolist()}
        if self.smoothed is not None:
            state["smoothed"] = self.smoothed.tolist()
        return state

    def _load(self, state):
        if "baseline" in state:
            self.baseline = np.array(state["baseline"], dtype=np.float64)
            self.best = np.array(state["best"], dtype=np.float64)
        if "smoothed" in state:
            self.smoothed = np.array(state["smoothed"], dtype=np.float64)


class UniRain(TaskWeighting):
    """UniRain's multi-objective reweighting, the CoBa convergence balancer on training losses.

    Each task's loss is normalised by the mean of its first ``window`` losses. After ``warmup``
    iterations (equal weights until then, and until ``window`` points exist), with
    ``a_i`` the least-squares slope of task ``i``'s last ``window`` normalised losses:

    * type balance ``TBS = softmax(K a / sum_j |a_j|)``: slower-converging types weigh more;
    * type stability ``TSS_i = softmax_i(-N a_i / sum_{s in last N} |a_i(s)|)``: a type whose
      loss rises against its own recent slopes weighs less (no over-fitting one type);
    * adaptivity ``AF = min(n softmax_s(tau a_max(s) / sum_s a_max(s))[n], 1)`` over the ``n``
      slope points so far: near 1 while the steepest-rising slope is like its history (balance
      dominates), falling when a type starts to diverge (stability takes over);
    * ``w = K (AF * TBS + (1 - AF) * TSS)``.
    """

    name = "unirain"

    def __init__(self, tasks, window: int = 10, tau: float = 5.0, warmup: int = 100):
        super().__init__(tasks)
        if window < 2:
            raise ValueError(f"unirain window must be >= 2, got {window}")
        self.window, self.tau, self.warmup = window, tau, warmup
        self.recent: deque = deque(maxlen=window)       # raw losses, last N iterations
        self.scale: np.ndarray | None = None            # mean of the first N losses per task
        self.slopes: deque = deque(maxlen=window)       # per-task slopes, last N
        self.max_slopes: list[float] = []               # a_max over every slope point
        self.last: dict[str, float] = {}                # last AF (for logging)

    def _weights(self, losses):
        k = len(losses)
        self.recent.append(losses)
        if self.scale is None and len(self.recent) == self.window:
            self.scale = np.maximum(np.mean(self.recent, axis=0), _EPS)
        if self.scale is None or self.steps <= self.warmup:
            return np.ones(k)
        history = np.asarray(self.recent) / self.scale
        slopes = np.array([_slope(history[:, i]) for i in range(k)])
        self.slopes.append(slopes)
        self.max_slopes.append(float(slopes.max()))
        tbs = softmax(k * slopes / max(np.abs(slopes).sum(), _EPS))
        own = np.maximum(np.abs(np.asarray(self.slopes)).sum(axis=0), _EPS)
        tss = softmax(-self.window * slopes / own)
        maxima = np.asarray(self.max_slopes)
        total = maxima.sum()
        if abs(total) < _EPS:
            af = 1.0
        else:
            af = float(min(len(maxima) * softmax(self.tau * maxima / total)[-1], 1.0))
        self.last = {"af": af}
        return k * (af * tbs + (1.0 - af) * tss)

    def _state(self):
        return {"recent": [r.tolist() for r in self.recent], "slopes": [s.tolist() for s in self.slopes],
                "max_slopes": list(self.max_slopes), "scale": None if self.scale is None else self.scale.tolist()}

    def _load(self, state):
        self.recent = deque((np.array(r) for r in state["recent"]), maxlen=self.window)
        self.slopes = deque((np.array(s) for s in state["slopes"]), maxlen=self.window)
        self.max_slopes = list(state["max_slopes"])
        self.scale = None if state["scale"] is None else np.array(state["scale"], dtype=np.float64)


class DWA(TaskWeighting):
    """Dynamic weight averaging (Liu, Johns and Davison, CVPR 2019).

    Losses are averaged over periods of ``period`` iterations (the paper's epochs);
    ``w = K softmax(r / T)`` with ``r_i = Lbar_i(p-1) / Lbar_i(p-2)`` over the last two complete
    periods; ``w = 1`` until two periods are complete. Weights change at period boundaries.
    """

    name = "dwa"

    def __init__(self, tasks, temperature: float = 2.0, period: int = 100):
        super().__init__(tasks)
        if temperature <= 0 or period < 1:
            raise ValueError("dwa needs temperature > 0 and period >= 1")
        self.temperature, self.period = temperature, period
        self.running = np.zeros(len(self.tasks))
        self.means: list[np.ndarray] = []  # the last two complete period means
        self.current = np.ones(len(self.tasks))

    def _weights(self, losses):
        self.running += losses
        weights = self.current
        if self.steps % self.period == 0:
            self.means = (self.means + [self.running / self.period])[-2:]
            self.running = np.zeros_like(self.running)
            if len(self.means) == 2:
                ratio = (self.means[1] + _EPS) / (self.means[0] + _EPS)
                self.current = len(losses) * softmax(ratio / self.temperature)
        return weights

    def _state(self):
        return {"running": self.running.tolist(), "means": [m.tolist() for m in self.means],
                "current": self.current.tolist()}

    def _load(self, state):
        self.running = np.array(state["running"], dtype=np.float64)
        self.means = [np.array(m, dtype=np.float64) for m in state["means"]]
        self.current = np.array(state["current"], dtype=np.float64)


class Uncertainty(TaskWeighting):
    """Uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018), the common form
    ``sum_i exp(-s_i) L_i + s_i`` with learnt ``s_i = log sigma_i^2`` (initially 0, so every
    weight starts at 1 like ``equal``). Its parameters must be optimised with the network's."""

    name = "uncertainty"

    def __init__(self, tasks):
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def _weights(self, losses):
        return np.exp(-self.log_vars.detach().double().cpu().numpy())

    def _total(self, losses, weights):
        precision = torch.exp(-self.log_vars)  # differentiable in log_vars, unlike ``weights``
        return sum(precision[i] * losses[t] + self.log_vars[i] for i, t in enumerate(self.tasks))


class Relative(TaskWeighting):
    """Each task weighed by how much restoring it can gain (not in the papers).

    ``r_t = m r_{t-1} + (1 - m) L_ref,t`` (``r_1 = L_ref,1``) with ``L_ref`` the task's loss of
    the unrestored input on this iteration's patch, and ``w = K r^-p / sum_j r_j^-p``: with
    ``p = 1`` the total is (up to a common factor) ``sum_i L_i / r_i``, every task's loss as a
    fraction of doing nothing. A nearly clean task (raindrop: reference ~0.06 against haze's
    ~0.7 at 64 px) then costs as much to spoil as haze gains from being restored, where equal
    weights let haze's global corrections leak onto it (docs/benchmarks.md).
    """

    name = "relative"
    needs_reference = True

    def __init__(self, tasks, momentum: float = 0.99, power: float = 1.0):
        super().__init__(tasks)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"weighting momentum must be in [0, 1), got {momentum}")
        if power < 0:
            raise ValueError(f"weighting power must be >= 0, got {power}")
        self.momentum, self.power = momentum, power
        self.reference: np.ndarray | None = None

    def set_reference(self, losses: dict[str, float]) -> None:
        """Feed this iteration's reference losses (before :meth:`update`)."""
        values = np.maximum(self._finite(losses, "reference loss"), _EPS)
        if self.reference is None:
            self.reference = values
        else:
            self.reference = self.momentum * self.reference + (1.0 - self.momentum) * values

    def _weights(self, losses):
        if self.reference is None:
            raise RuntimeError("relative weighting: no reference loss yet (call set_reference first)")
        scores = self.reference ** -self.power
        return len(losses) * scores / scores.sum()

    def _state(self):
        return {} if self.reference is None else {"reference": self.reference.tolist()}

    def _load(self, state):
        if "reference" in state:
            self.reference = np.array(state["reference"], dtype=np.float64)


#: Strategy name -> ``builder(tasks, **options) -> TaskWeighting`` (the ``weighting.name`` of a config).
WEIGHTINGS: Registry[Callable[..., TaskWeighting]] = Registry("weighting")
WEIGHTINGS.register("equal", Equal)
WEIGHTINGS.register("rci", lambda tasks, **kw: ConvergenceIndex(tasks, use_aci=False, **kw))
WEIGHTINGS.register("ori", lambda tasks, **kw: ConvergenceIndex(tasks, use_aci=True, **kw))
WEIGHTINGS.register("unirain", UniRain)
WEIGHTINGS.register("dwa", DWA)
WEIGHTINGS.register("uncertainty", Uncertainty)
WEIGHTINGS.register("relative", Relative)


def create_weighting(name: str, tasks: Sequence[str], **options: Any) -> TaskWeighting:
    """Build a strategy by name; unknown names or options give one clear error."""
    build = WEIGHTINGS.get(name)
    try:
        return build(list(tasks), **options)
    except TypeError as exc:
        raise ValueError(f"weighting {name!r}: bad options {sorted(options)} ({exc})") from None

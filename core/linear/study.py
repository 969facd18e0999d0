"""The linear-model convergence study (workshop paper, section 2.1 and Figure 3).

Data: n points ``x_i ~ N(0, I_d)``, labels ``y = X w + σ ε`` with ``w ~ N(0, I/d)``. Ridge loss
on a set S::

    L_S(θ) = ½ Σ_{i∈S} (x_i·θ − y_i)² + ½ λ |θ|²

``θ_full`` minimizes it on all n points, ``θ_ret`` on the retain set R = all − F (closed form,
the target). Starting from ``θ_full`` each method runs T steps of gradient descent on its own
objective, with step size 1/L where L is the largest eigenvalue of that objective's Hessian.
Every objective here is a quadratic ``½ θᵀHθ − bᵀθ + c``, so a step is ``θ ← θ − (Hθ − b)/L``:

- **GD**: the retain ridge loss, ``H = X_Rᵀ X_R + λI``, ``b = X_Rᵀ y_R``.
- **OM** (oracle matching): ``½ Σ_{all i} (x_i·θ − x_i·θ_ret)²``, ``H = XᵀX``, ``b = XᵀX θ_ret``.
- **OM (retain only)**: the same sum over R only, ``H = X_RᵀX_R``, ``b = X_RᵀX_R θ_ret``.
- **GD+GA**: retain loss minus α times the forget loss ``½ Σ_{i∈F} (x_i·θ − y_i)²``,
  ``H = X_RᵀX_R + λI − α X_FᵀX_F``, ``b = X_Rᵀy_R − α X_Fᵀy_F`` (indefinite: it can diverge).

Why OM wins: with d > n, ``θ_full − θ_ret`` lies in the span of all n points. The retain
gradient never sees the forget directions (the part of that span orthogonal to the retain
points), so GD and OM-retain can only shrink that component through λ, at a rate λ/L per step.
OM's sum includes the forget points, so its Hessian is well conditioned on the whole span and
the error shrinks geometrically.

We record, at every step t, ``rel_dist_t = ‖θ_t − θ_ret‖ / ‖θ_full − θ_ret‖`` and the objective.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from core.common.config import Config, check_float, check_int
from core.common.errors import ConfigError

METHODS: tuple[str, ...] = ("GD", "OM", "OM (retain only)", "GD+GA")

# A method whose rel_dist passes this (or stops being finite) is declared diverged and its
# curve ends there: nothing non-finite ever reaches the store.
DIVERGENCE_THRESHOLD = 1e6
# Converged means rel_dist below this at the last step; otherwise a finite run has stalled.
CONVERGED_TOL = 1e-3
# The largest α of GD+GA accepted (see ``LinearConfig.validate``).
MAX_ASCENT_WEIGHT = 1e6


@dataclass(frozen=True)
class LinearConfig(Config):
    """Parameters of the study (defaults: the paper's Figure 3)."""

    n: int = 100  # training points
    d: int = 400  # dimension (d > n: over-parameterized, as in the paper)
    forget: int = 5  # size of the forget set, drawn at random
    lam: float = 0.01  # ridge λ (the paper gives none; a large λ lets GD creep forward)
    noise: float = 0.1  # σ of the label noise
    steps: int = 1000  # T, steps of every method
    seed: int = 0
    ascent_weight: float = 1.0  # α of GD+GA

    def validate(self) -> None:
        check_int("n", self.n, 2, 20_000)
        check_int("d", self.d, 1, 5_000)
        check_int("forget", self.forget, 1)
        if self.forget >= self.n:
            raise ConfigError(
                f"forget must be smaller than n (at least one point must be retained); "
                f"got forget={self.forget}, n={self.n}"
            )
        check_float("lam", self.lam, 0.0)
        check_float("noise", self.noise, 0.0)
        check_int("steps", self.steps, 1, 100_000)
        check_int("seed", self.seed, 0, 2**32 - 1)
        # α beyond this only makes GD+GA diverge at its first step, and near 1e300 α·X_FᵀX_F
        # overflows (the eigen-solver then fails): refuse it with the range instead
        check_float("ascent_weight", self.ascent_weight, 0.0, MAX_ASCENT_WEIGHT)


@dataclass(frozen=True)
class Problem:
    """One draw of the data and its two closed-form solutions."""

    X: np.ndarray  # (n, d)
    y: np.ndarray  # (n,)
    w: np.ndarray  # (d,) the true weights
    forget: np.ndarray  # (k,) sorted indices of the forget set
    theta_full: np.ndarray  # (d,)
    theta_ret: np.ndarray  # (d,)

    @property
    def retain(self) -> np.ndarray:
        mask = np.ones(len(self.y), dtype=bool)
        mask[self.forget] = False
        return np.flatnonzero(mask)


@dataclass(frozen=True)
class Quadratic:
    """An objective ``½ θᵀHθ − bᵀθ + c`` with gradient ``Hθ − b``."""

    H: np.ndarray  # (d, d)
    b: np.ndarray  # (d,)
    c: float

    def value(self, theta: np.ndarray) -> float:
        return float(0.5 * theta @ self.H @ theta - self.b @ theta + self.c)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        return self.H @ theta - self.b

    def lipschitz(self) -> float:
        """L = the largest eigenvalue of H (H is symmetric)."""
        return float(np.linalg.eigvalsh(self.H)[-1])


@dataclass(frozen=True)
class Outcome:
    """How a method ended."""

    method: str
    step_size: float
    final_rel_dist: float
    min_rel_dist: float
    step_below_1e3: int | None  # first step with rel_dist < 1e-3
    step_below_1e6: int | None  # first step with rel_dist < 1e-6
    diverged: bool
    diverged_at: int | None  # first step past the divergence threshold
    status: str  # "converged" | "stalled" | "diverged"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Curve:
    """A method's trajectory: one entry per recorded step (0 … last finite step)."""

    method: str
    rel_dist: np.ndarray  # (n_recorded,)
    objective: np.ndarray  # (n_recorded,)
    outcome: Outcome


def ridge_solution(X: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """argmin_θ ½|Xθ − y|² + ½λ|θ|² = (XᵀX + λI)⁻¹ Xᵀy.

    When there are fewer points than dimensions the equivalent dual form
    ``Xᵀ (XXᵀ + λI)⁻¹ y`` is solved instead (an m×m system). With λ = 0 the minimum-norm
    least-squares solution is returned (the λ → 0 limit).
    """
    m, d = X.shape
    if lam == 0.0:
        return np.linalg.lstsq(X, y, rcond=None)[0]
    if m < d:
        return X.T @ np.linalg.solve(X @ X.T + lam * np.eye(m), y)
    return np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y)


def make_problem(cfg: LinearConfig) -> Problem:
    """Draw X, w, y and the forget set from ``cfg.seed``, and solve for θ_full and θ_ret."""
    rng = np.random.default_rng(cfg.seed)
    X = rng.standard_normal((cfg.n, cfg.d))
    w = rng.standard_normal(cfg.d) / math.sqrt(cfg.d)
    y = X @ w + cfg.noise * rng.standard_normal(cfg.n)
    forget = np.sort(rng.choice(cfg.n, size=cfg.forget, replace=False))
    keep = np.setdiff1d(np.arange(cfg.n), forget)
    theta_full = ridge_solution(X, y, cfg.lam)
    theta_ret = ridge_solution(X[keep], y[keep], cfg.lam)
    if not np.linalg.norm(theta_full - theta_ret) > 1e-12 * max(1.0, np.linalg.norm(theta_full)):
        raise ConfigError(
            "with these settings forgetting the points does not change the model "
            "(θ_full = θ_ret), so there is nothing to unlearn; raise the noise or change the seed"
        )
    return Problem(X, y, w, forget, theta_full, theta_ret)


def objectives(p: Problem, cfg: LinearConfig) -> dict[str, Quadratic]:
    """The four methods' objectives as quadratics (see the module docstring)."""
    Xr, yr = p.X[p.retain], p.y[p.retain]
    Xf, yf = p.X[p.forget], p.y[p.forget]
    eye = np.eye(p.X.shape[1])
    Hr = Xr.T @ Xr
    Hf = Xf.T @ Xf
    H_all = p.X.T @ p.X
    a = cfg.ascent_weight
    pred_all = p.X @ p.theta_ret
    pred_r = Xr @ p.theta_ret
    return {
        "GD": Quadratic(Hr + cfg.lam * eye, Xr.T @ yr, 0.5 * float(yr @ yr)),
        "OM": Quadratic(H_all, H_all @ p.theta_ret, 0.5 * float(pred_all @ pred_all)),
        "OM (retain only)": Quadratic(Hr, Hr @ p.theta_ret, 0.5 * float(pred_r @ pred_r)),
        "GD+GA": Quadratic(
            Hr + cfg.lam * eye - a * Hf,
            Xr.T @ yr - a * (Xf.T @ yf),
            0.5 * float(yr @ yr) - 0.5 * a * float(yf @ yf),
        ),
    }


def _first_below(values: np.ndarray, tol: float) -> int | None:
    hits = np.flatnonzero(values < tol)
    return int(hits[0]) if hits.size else None


def run_method(name: str, q: Quadratic, p: Problem, steps: int) -> Curve:
    """Run ``steps`` steps of θ ← θ − ∇q(θ)/L from θ_full, recording rel_dist and q(θ)."""
    L = q.lipschitz()
    eta = 1.0 / L if L > 0 else 0.0
    theta = p.theta_full.copy()
    denom = float(np.linalg.norm(p.theta_full - p.theta_ret))
    rel = np.empty(steps + 1)
    obj = np.empty(steps + 1)
    rel[0], obj[0] = 1.0, q.value(theta)
    diverged_at = None
    last = steps
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, steps + 1):
            theta = theta - eta * q.grad(theta)
            r = float(np.linalg.norm(theta - p.theta_ret)) / denom
            o = q.value(theta)
            if not (math.isfinite(r) and math.isfinite(o)) or r > DIVERGENCE_THRESHOLD:
                diverged_at, last = t, t - 1
                break
            rel[t], obj[t] = r, o
    rel, obj = rel[: last + 1], obj[: last + 1]
    final = float(rel[-1])
    status = (
        "diverged"
        if diverged_at is not None
        else "converged"
        if final < CONVERGED_TOL
        else "stalled"
    )
    outcome = Outcome(
        method=name,
        step_size=eta,
        final_rel_dist=final,
        min_rel_dist=float(rel.min()),
        step_below_1e3=_first_below(rel, 1e-3),
        step_below_1e6=_first_below(rel, 1e-6),
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        status=status,
    )
    return Curve(name, rel, obj, outcome)


def run_study(cfg: LinearConfig) -> tuple[Problem, list[Curve]]:
    """Draw the problem and run every method in ``METHODS`` for ``cfg.steps`` steps."""
    p = make_problem(cfg)
    qs = objectives(p, cfg)
    return p, [run_method(name, qs[name], p, cfg.steps) for name in METHODS]

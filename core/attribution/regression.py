"""Linear datamodels in closed form, the ℓ1 fit, and the linear datamodeling score (LDS).

Notation: ``X`` ``(M, p)`` 0/1 training masks of M subset models over p train points, ``Y``
``(M, T)`` one output per target (a margin, or one class's logit of one point). A datamodel of
target t is ``f_t(mask) = mask · w_t + b_t``. Everything here is pure math: no store, no files.

Ridge, for every target at once (centred: ``X̃ = X − x̄``, ``Ỹ = Y − ȳ``, so the intercept is not
penalized)::

    W = (X̃ᵀX̃ + λI)⁻¹ X̃ᵀỸ        (p, T)          b = ȳ − x̄ W        (T,)

One eigendecomposition ``X̃ᵀX̃ = Q diag(e) Qᵀ`` serves every λ of a grid:
``W(λ) = Q diag(1/(e + λ)) QᵀX̃ᵀỸ``, and predictions on other masks ``X'`` need only
``(X' − x̄) Q diag(1/(e+λ)) (QᵀX̃ᵀỸ)``, never W itself. λ is given as a *scale* s of the mean
diagonal of X̃ᵀX̃ (``λ = s · tr(X̃ᵀX̃)/p ≈ s · M·α(1−α)``), so one s means the same shrinkage
whatever M is.

LDS of target t over held-out models: Spearman's ρ between the predicted outputs
``(X_h w_t + b_t)`` and the actual ones ``Y_h[:, t]`` (Pearson correlation of average ranks);
NaN where either side is constant. The score of a group of targets is the mean over targets
whose ρ is defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from core.common.errors import ConfigError

F64 = torch.float64
LAMBDA_SCALES = tuple(float(s) for s in np.logspace(-3, 1, 9))  # λ / mean diag(X̃ᵀX̃)


def _t(a, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).to(device, F64)


@dataclass
class RidgeBasis:
    """The eigendecomposition of one fit's centred Gram matrix and ``QᵀX̃ᵀỸ``.

    ``xbar`` (p,), ``ybar`` (T,), ``q`` (p, r), ``e`` (r,), ``c`` (r, T) = QᵀX̃ᵀỸ, ``diag`` the
    mean diagonal of X̃ᵀX̃ (λ's unit); r = p, or X̃'s rank in the dual form.
    """

    xbar: torch.Tensor
    ybar: torch.Tensor
    q: torch.Tensor
    e: torch.Tensor
    c: torch.Tensor
    diag: float

    def lam(self, scale: float) -> float:
        return float(scale) * self.diag

    def weights(self, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``W (p, T)`` and ``b (T,)`` for ``λ = scale · diag``."""
        w = self.q @ (self.c / (self.e + self.lam(scale)).unsqueeze(1))
        return w, self.ybar - self.xbar @ w

    def predict(self, x_new, scale: float) -> torch.Tensor:
        """Predicted outputs ``(M', T)`` on masks ``x_new (M', p)`` without forming W."""
        xq = (_t(x_new, self.q.device) - self.xbar) @ self.q  # (M', p)
        return (xq / (self.e + self.lam(scale))) @ self.c + self.ybar


def ridge_basis(
    x, y, device: torch.device | str | None = None, dual: bool | None = None
) -> RidgeBasis:
    """Centre ``x (M, p)`` and ``y (M, T)``, eigendecompose ``X̃ᵀX̃`` (float64, on ``device``).

    With fewer models than points (``dual``, the default when ``M < p``: CIFAR-10's 50,000
    points) the ``(p, p)`` matrix is never formed. ``X̃X̃ᵀ = U diag(e) Uᵀ`` ``(M, M)`` has the same
    nonzero eigenvalues, and ``Q = X̃ᵀU diag(e^-½)`` ``(p, r)`` spans X̃'s row space, where
    X̃ᵀỸ and every W(λ) live, so ``c = QᵀX̃ᵀỸ = diag(e^½) UᵀỸ`` and the formulas above hold
    exactly on those r directions (eigenvalues below ``M·ε·max e`` — centring leaves one — are
    dropped: their directions carry no signal).
    """
    xt, yt = _t(x, device), _t(y, device)
    if xt.ndim != 2 or yt.ndim != 2 or xt.shape[0] != yt.shape[0]:
        raise ConfigError(f"masks {tuple(xt.shape)} and outputs {tuple(yt.shape)} do not pair")
    m, p = xt.shape
    if m < 2:
        raise ConfigError("a datamodel needs at least two models")
    xbar, ybar = xt.mean(0), yt.mean(0)
    xc, yc = xt - xbar, yt - ybar
    diag = float((xc * xc).sum() / p)  # mean diagonal of X̃ᵀX̃
    if m < p if dual is None else dual:
        e, u = torch.linalg.eigh(xc @ xc.T)  # (M,), (M, M)
        keep = e > e.max().clamp_min(0.0) * m * torch.finfo(F64).eps
        e, u = e[keep], u[:, keep]
        root = e.sqrt()
        q = (xc.T @ u) / root  # (p, r), orthonormal columns
        return RidgeBasis(xbar, ybar, q, e, root.unsqueeze(1) * (u.T @ yc), diag)
    e, q = torch.linalg.eigh(xc.T @ xc)  # (p,), (p, p)
    c = q.T @ (xc.T @ yc)  # (p, T)
    return RidgeBasis(xbar, ybar, q, e.clamp_min(0.0), c, diag)


def ridge_fit(x, y, lam: float, device: torch.device | str | None = None):
    """Ridge for all targets by one linear solve: ``(X̃ᵀX̃ + λI) W = X̃ᵀỸ``, ``b = ȳ − x̄W``.

    ``x (M, p)``, ``y (M, T)``; returns float64 tensors ``W (p, T)``, ``b (T,)``. ``lam`` is the
    absolute λ (≥ 0; 0 needs X̃ᵀX̃ invertible)."""
    if not lam >= 0:
        raise ConfigError(f"λ must be ≥ 0, got {lam}")
    xt, yt = _t(x, device), _t(y, device)
    xbar, ybar = xt.mean(0), yt.mean(0)
    xc = xt - xbar
    a = xc.T @ xc + lam * torch.eye(xt.shape[1], dtype=F64, device=xt.device)
    w = torch.linalg.solve(a, xc.T @ (yt - ybar))
    return w, ybar - xbar @ w


def lasso_fit(x, y, alpha: float, max_iter: int = 2000, tol: float = 1e-4):
    """ℓ1 datamodels (scikit-learn's coordinate descent, one target after the other):
    ``min_w 1/(2M) ‖Ỹ_t − X̃ w‖² + α ‖w‖₁`` for each target t, on centred data with the Gram
    matrix precomputed; ``b = ȳ − x̄W``. Returns NumPy ``W (p, T)``, ``b (T,)``."""
    from sklearn.linear_model import Lasso

    if not alpha > 0:
        raise ConfigError(f"the ℓ1 penalty α must be > 0, got {alpha}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xbar, ybar = x.mean(0), y.mean(0)
    xc, yc = x - xbar, y - ybar
    model = Lasso(alpha=alpha, fit_intercept=False, precompute=xc.T @ xc, max_iter=max_iter,
                  tol=tol, selection="cyclic")  # fmt: skip
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(xc, yc)
    w = np.asarray(model.coef_, dtype=np.float64).reshape(y.shape[1], x.shape[1]).T  # (p, T)
    return w, ybar - xbar @ w


def spearman_columns(pred, actual) -> np.ndarray:
    """Spearman's ρ of every column: ``pred``, ``actual`` ``(M, T)`` → ``(T,)`` (NaN where a
    column is constant). Ranks are averaged over ties, as ``scipy.stats.spearmanr``."""
    p = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred, dtype=np.float64)
    a = np.asarray(actual.cpu() if isinstance(actual, torch.Tensor) else actual, np.float64)
    if p.shape != a.shape or p.ndim != 2:
        raise ConfigError(f"predicted {p.shape} and actual {a.shape} outputs must be (M, T)")
    rp, ra = rankdata(p, axis=0), rankdata(a, axis=0)
    rp -= rp.mean(0)
    ra -= ra.mean(0)
    den = np.sqrt((rp**2).sum(0) * (ra**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rp * ra).sum(0) / den
    rho[den == 0] = np.nan
    return rho


def mean_score(rho: np.ndarray) -> float:
    """Mean of the defined per-target scores (NaN if none is)."""
    rho = np.asarray(rho, dtype=np.float64)
    ok = np.isfinite(rho)
    return float(rho[ok].mean()) if ok.any() else float("nan")

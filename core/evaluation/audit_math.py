"""Membership audits, the math: arrays in, arrays out (storage is ``core.evaluation.audits``).

Two judges beside KLoM (DESIGN.md, "Membership audits"). Margins are ``(n_models, n_points)``
arrays in the global point space, as everywhere in the lab.

**Population MIA** (the common unlearning-benchmark baseline). For each model k separately, an
attack classifier learns to tell *members* from *non-members* by one per-example signal, the
margin ``m`` (the loss adds nothing: ``loss = −log σ(m) = softplus(−m)`` is a monotone
function of the margin, so a threshold on one is a threshold on the other):

    train   logistic regression  P(member | m) = σ(w·m + b)  on retain (y = 1) ∪ val (y = 0)
    apply   to the forget points: called a member when σ(w·m + b) > ½

Retain is much larger than val, so the classes are balanced by weighting
(``class_weight="balanced"``): each point of class c weighs ``n / (2·n_c)``, so both classes
carry the same total weight — the expected loss of subsampling retain down to val's size,
without throwing points away — and the ½ threshold is the balanced-error one. The margin is
standardized per model. The fit is liblinear's problem (scikit-learn's ``liblinear`` solver: the
bias is a feature, so both weights are penalized; C = 1; y = ±1; s_i the class weights)

    min_{w,b}  ½(w² + b²) + C Σ_i s_i log(1 + exp(−y_i (w·m_i + b)))

solved by Newton's method with backtracking, every model at once (two unknowns per model, a 2×2
solve each), to full precision; the tests compare it with scikit-learn's solver. It imports no
scikit-learn, which a process evaluating a run would otherwise load for this alone (~1–3 s on
a 2-core machine). Reported: the
share of forget points called members, per model and averaged over models. The same for the
oracle models is the floor: they never trained on the forget points, so their figure is what
"not a member" looks like to this attack (its false-positive rate on non-members that resemble
members).

**U-LiRA** (per example; an unlearning likelihood-ratio attack). Each side's models are split
once, by a seeded permutation, into a *shadow* half (the first ``n // 2``) and a *target* half.
For every forget point j, Gaussians are fitted (maximum likelihood) to its margins over the
shadow unlearned models, N(μ_U, σ²_U), and over the shadow oracle models, N(μ_O, σ²_O), with
σ² floored at ``VAR_FLOOR`` (all margins equal would give σ² = 0). Each target model t, of either
side, gets the log likelihood ratio

    s_tj = log N(m_tj; μ_U, σ²_U) − log N(m_tj; μ_O, σ²_O)      ("unlearned" when s > 0)

Per point: the balanced accuracy ``(TPR + TNR) / 2`` of that decision over the target models
(unlearned = positive; a score of exactly 0 counts half), 0.5 = indistinguishable, 1 = always
told apart. Per forget set: the mean over points, and the TPR at a low FPR α with one threshold
on the pooled scores of every (target model, point) pair: t = the ``⌊α·N⌋ + 1``-th largest of
the N negative (oracle) scores, positives with s > t are hits — so the pooled FPR is at most α
(0 when N < 1/α). The same computed between two oracle groups is the floor: what a perfect
unlearner scores with this many models.

Everything is vectorized over points and models; ``ulira_reference`` is the per-point loop (with
``scipy.stats.norm``) the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.common.errors import ConfigError

# σ² floor of the fitted Gaussians, in margin units squared: a standard deviation of 1e-3,
# far below any margin difference that matters and above float32 rounding of the stored
# margins (spacing ≤ 8e-6 for |m| ≤ 100). Only zero-variance shadow samples (all margins equal,
# e.g. one shadow model or a saturated point) reach it.
VAR_FLOOR = 1e-6
CLIP = 100.0  # margins are clipped to [−100, 100] first, as KLoM does
FPRS = (0.01, 0.05)


def _margins(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ConfigError(f"{name} margins must be a non-empty (n_models, n_points) array")
    if not np.isfinite(a).all():
        raise ConfigError(f"{name} margins contain NaN or infinite values")
    return np.clip(a, -CLIP, CLIP)


# ----------------------------------------------------------------------------- U-LiRA


def half_split(n_models: int, seed: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(shadow, target)`` model indices of one side: a permutation drawn from
    ``default_rng([seed, side])``; shadow = its first ``n // 2``, target = the rest.

    ``side`` 0 is the tested group (unlearned, or the floor's second oracle group), 1 the
    oracles, so the main audit and its floor hold out the very same oracle models.
    """
    if n_models < 2:
        raise ConfigError(f"U-LiRA needs at least 2 models per side, got {n_models}")
    order = np.random.default_rng([seed, side]).permutation(n_models)
    return order[: n_models // 2], order[n_models // 2 :]


def _fit(shadow: np.ndarray, var_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-point Gaussian MLE of ``(n_shadow, n_points)`` → mean, floored variance."""
    return shadow.mean(0), np.maximum(shadow.var(0), var_floor)


def _log_ratio(x: np.ndarray, fit_u, fit_o) -> np.ndarray:
    """log N(x; μ_U, σ²_U) − log N(x; μ_O, σ²_O), broadcast over ``x`` (n, n_points)."""
    (mu_u, var_u), (mu_o, var_o) = fit_u, fit_o
    return (
        0.5 * (np.log(var_o) - np.log(var_u))
        + (x - mu_o) ** 2 / (2 * var_o)
        - (x - mu_u) ** 2 / (2 * var_u)
    )


@dataclass(frozen=True)
class ULiRA:
    """Scores of the target models: ``pos`` (unlearned side) ``(n_t_u, n_points)``, ``neg``
    (oracle side) ``(n_t_o, n_points)``; ``bacc`` ``(n_points,)``."""

    pos: np.ndarray
    neg: np.ndarray
    bacc: np.ndarray

    def tpr_at(self, fpr: float) -> float:
        return tpr_at_fpr(self.pos, self.neg, fpr)


def ulira(unlearned, oracle, seed: int = 0, var_floor: float = VAR_FLOOR) -> ULiRA:
    """U-LiRA of every point (column) at once; see the module docstring for the math.

    unlearned ``(n_u, n_points)``, oracle ``(n_o, n_points)``: the points to audit (the
    forget set's columns). Deterministic for a given ``seed``.
    """
    u, o = _margins(unlearned, "unlearned"), _margins(oracle, "oracle")
    if u.shape[1] != o.shape[1]:
        raise ConfigError(f"the two sides cover {u.shape[1]} and {o.shape[1]} points")
    su, tu = half_split(u.shape[0], seed, 0)
    so, to = half_split(o.shape[0], seed, 1)
    fit_u, fit_o = _fit(u[su], var_floor), _fit(o[so], var_floor)
    pos = _log_ratio(u[tu], fit_u, fit_o)  # (n_t_u, n_points)
    neg = _log_ratio(o[to], fit_u, fit_o)  # (n_t_o, n_points)
    return ULiRA(pos, neg, balanced_accuracy(pos, neg))


def balanced_accuracy(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per point (column): ``(TPR + TNR) / 2`` of the rule "s > 0 ⇒ unlearned", ties half."""
    tpr = (pos > 0).mean(0) + 0.5 * (pos == 0).mean(0)
    tnr = (neg < 0).mean(0) + 0.5 * (neg == 0).mean(0)
    return (tpr + tnr) / 2


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR at pooled FPR ≤ ``fpr``: threshold t = the ``⌊fpr·N⌋ + 1``-th largest of the N
    pooled negative scores; the share of pooled positive scores strictly above t."""
    n = np.asarray(neg, dtype=np.float64).ravel()
    k = min(int(np.floor(fpr * n.size)), n.size - 1)
    t = np.partition(n, n.size - 1 - k)[n.size - 1 - k]
    return float((np.asarray(pos).ravel() > t).mean())


def ulira_reference(unlearned, oracle, seed: int = 0, var_floor: float = VAR_FLOOR) -> np.ndarray:
    """SLOW REFERENCE for tests: U-LiRA's per-point balanced accuracy, one point at a time
    with ``scipy.stats.norm.logpdf`` — use ``ulira`` for real work."""
    from scipy.stats import norm

    u, o = _margins(unlearned, "unlearned"), _margins(oracle, "oracle")
    su, tu = half_split(u.shape[0], seed, 0)
    so, to = half_split(o.shape[0], seed, 1)
    out = np.empty(u.shape[1])
    for j in range(u.shape[1]):
        mu_u, sd_u = u[su, j].mean(), np.sqrt(max(u[su, j].var(), var_floor))
        mu_o, sd_o = o[so, j].mean(), np.sqrt(max(o[so, j].var(), var_floor))
        hits, total = 0.0, 0.0
        for x, positive in [(x, True) for x in u[tu, j]] + [(x, False) for x in o[to, j]]:
            s = norm.logpdf(x, mu_u, sd_u) - norm.logpdf(x, mu_o, sd_o)
            right = 0.5 if s == 0 else float((s > 0) == positive)
            weight = 1 / len(tu) if positive else 1 / len(to)
            hits, total = hits + right * weight, total + weight
        out[j] = hits / total
    return out


# ----------------------------------------------------------------------------- population MIA


@dataclass(frozen=True)
class MIA:
    """Per model: the share of forget / retain / val points called members ``(n_models,)``;
    ``forget_member`` ``(n_models, n_forget)`` bool."""

    forget_member: np.ndarray
    forget_share: np.ndarray
    retain_share: np.ndarray
    val_share: np.ndarray

    @property
    def attack_bacc(self) -> np.ndarray:
        """Each model's attack, balanced accuracy on its own training points (in-sample):
        ``(retain share + 1 − val share) / 2`` — how much membership the margin reveals."""
        return (self.retain_share + 1 - self.val_share) / 2


def population_mia(margins, forget, retain, val) -> MIA:
    """The population attack, one logistic regression per model (vectorized over models, not a
    loop): fitted on retain (members) and val (non-members), balanced by class weights, then
    applied to the forget points. Index arrays are point indices into the margins' columns."""
    m = _margins(margins, "model")
    forget, retain, val = (np.asarray(i, dtype=np.int64) for i in (forget, retain, val))
    if not (forget.size and retain.size and val.size):
        raise ConfigError("the population MIA needs forget, retain and val points")
    x = np.concatenate([m[:, retain], m[:, val]], axis=1)  # (n_models, n_train)
    y = np.r_[np.ones(retain.size), -np.ones(val.size)]
    weight = np.r_[np.full(retain.size, y.size / (2 * retain.size)),
                   np.full(val.size, y.size / (2 * val.size))]  # fmt: skip
    flat = np.ptp(x, axis=1) == 0  # one value everywhere: nothing to learn, nobody is a member
    center, scale = x.mean(1, keepdims=True), np.where(flat, 1.0, x.std(1))[:, None]
    w, b = balanced_logistic((x - center) / scale, y, weight)
    member = (w[:, None] * ((m - center) / scale) + b[:, None]) > 0  # (n_models, n_points)
    member[flat] = False
    called = member[:, forget]
    return MIA(called, called.mean(1), member[:, retain].mean(1), member[:, val].mean(1))


def _logistic_objective(x, y, weight, w, b, c: float) -> np.ndarray:
    z = w[:, None] * x + b[:, None]
    return 0.5 * (w**2 + b**2) + c * (weight * np.logaddexp(0.0, -y * z)).sum(1)


def balanced_logistic(x, y, weight, c: float = 1.0, tol: float = 1e-10, max_iter: int = 100):
    """Per row k of ``x`` ``(n_models, n)``: ``(w_k, b_k)`` minimizing
    ``½(w² + b²) + c Σ_i weight_i log(1 + exp(−y_i (w x_ki + b)))`` with ``y_i = ±1``.

    Newton's method on all rows at once: gradient ``θ + c Σ −y_i weight_i σ(−y_i z_i) (x_i, 1)``,
    Hessian ``I + c Σ weight_i σ(z_i) σ(−z_i) (x_i, 1)(x_i, 1)ᵀ`` (positive definite: the
    problem is strictly convex), each step halved until the objective does not rise. Stops
    when every step is below ``tol``."""
    x = np.asarray(x, dtype=np.float64)
    y, weight = np.asarray(y, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    w, b = np.zeros(x.shape[0]), np.zeros(x.shape[0])
    for _ in range(max_iter):
        z = w[:, None] * x + b[:, None]
        p = 0.5 * (1.0 + np.tanh(-0.5 * y * z))  # σ(−y z), stable
        r = -c * weight * y * p  # d loss / d z
        gw, gb = w + (r * x).sum(1), b + r.sum(1)
        h = c * weight * p * (1.0 - p)  # σ(z) σ(−z)
        hww, hwb, hbb = 1.0 + (h * x * x).sum(1), (h * x).sum(1), 1.0 + h.sum(1)
        det = hww * hbb - hwb**2
        dw, db = -(hbb * gw - hwb * gb) / det, -(hww * gb - hwb * gw) / det
        before, step = _logistic_objective(x, y, weight, w, b, c), np.ones_like(w)
        for _ in range(30):  # backtracking: halve the rows whose objective rose
            after = _logistic_objective(x, y, weight, w + step * dw, b + step * db, c)
            rose = after > before + 1e-12 * np.abs(before)
            if not rose.any():
                break
            step = np.where(rose, step / 2, step)
        w, b = w + step * dw, b + step * db
        if np.max(np.abs(step * dw) + np.abs(step * db)) < tol:
            break
    return w, b

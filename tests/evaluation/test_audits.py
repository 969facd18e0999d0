"""Membership audits: U-LiRA and the population MIA on synthetic margins with known answers,
then stored beside KLoM on a tiny lab (evaluate, audit_run, the CLI, the pages)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from core.common.errors import ConfigError
from core.evaluation.audit_math import (
    VAR_FLOOR,
    balanced_accuracy,
    half_split,
    population_mia,
    tpr_at_fpr,
    ulira,
    ulira_reference,
)

# ----------------------------------------------------------------------------- U-LiRA, synthetic

N_SIDE, N_POINTS = 100, 200  # models per side, forget points
N_TARGET = N_SIDE - N_SIDE // 2  # held-out models per side


def _null(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unlearned and oracle margins from one distribution (a per-point mean and spread)."""
    rng = np.random.default_rng(seed)
    mu, sd = rng.normal(0, 3, N_POINTS), rng.uniform(0.5, 2.0, N_POINTS)
    return (mu + sd * rng.normal(size=(N_SIDE, N_POINTS)),
            mu + sd * rng.normal(size=(N_SIDE, N_POINTS)))  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ulira_is_at_chance_when_unlearned_and_oracles_match(seed):
    """Same distribution on both sides: mean balanced accuracy ≈ 0.5, TPR@1%FPR ≈ 0.01.

    Bound on the mean balanced accuracy. Given the shadow fits, point j's rule "s > 0" is a
    fixed region R_j; the n_t = 50 target models of each side are i.i.d. from the same law, so
    both land in R_j with the same probability π_j. TPR_j ~ Bin(n_t, π_j)/n_t and
    TNR_j ~ Bin(n_t, 1 − π_j)/n_t, independent: E[bacc_j] = (π_j + 1 − π_j)/2 = 0.5 exactly and
    Var(bacc_j) = 2·π_j(1 − π_j)/(4·n_t) ≤ 1/(8·n_t). Points are independent, so the mean of
    P = 200 points has sd ≤ 1/√(8·n_t·P) = 1/√80000 ≈ 0.0035; we allow 5 sd: ±0.018.

    Bound on TPR@1%FPR. Pooled, there are N = n_t·P = 10,000 negative and as many positive
    scores, all i.i.d. from one mixture given the fits. The threshold is the 101st largest
    negative, so the pooled FPR is 100/N = 0.01 (continuous scores); the TPR is a share of N
    positives above it: Var ≈ α(1 − α)/N (binomial) + α(1 − α)/N (the threshold's own order-
    statistic noise) ⇒ sd ≈ √(2·0.0099/10000) ≈ 0.0014; 5 sd: ±0.007.
    """
    u, o = _null(seed)
    res = ulira(u, o, seed=seed)
    assert res.bacc.shape == (N_POINTS,) and res.pos.shape == res.neg.shape == (N_TARGET, N_POINTS)
    sd_mean = 1 / math.sqrt(8 * N_TARGET * N_POINTS)
    assert abs(res.bacc.mean() - 0.5) <= 5 * sd_mean
    sd_tpr = math.sqrt(2 * 0.01 * 0.99 / (N_TARGET * N_POINTS))
    assert abs(res.tpr_at(0.01) - 0.01) <= 5 * sd_tpr
    assert abs(res.tpr_at(0.05) - 0.05) <= 5 * math.sqrt(2 * 0.05 * 0.95 / (N_TARGET * N_POINTS))
    assert (res.neg.ravel() > np.sort(res.neg.ravel())[-101]).mean() == pytest.approx(0.01)


def test_ulira_tells_well_separated_sides_apart():
    """Unlearned margins 6 sd above the oracles': each Gaussian pair splits near the midpoint,
    3 sd from either mean, so each side is right with probability Φ(3) ≈ 0.9987."""
    u, o = _null(0)
    res = ulira(u + 6 * np.std(o, axis=0), o)
    assert res.bacc.mean() > 0.99 and res.bacc.min() > 0.9
    assert res.tpr_at(0.01) > 0.97 and res.tpr_at(0.05) > 0.99


def test_ulira_vectorized_matches_the_per_point_loop():
    """Mixed columns: chance, shifted, wider, constant on both sides, constant on one side,
    and only 2 models per side on a second call (one shadow model: the variance floor)."""
    rng = np.random.default_rng(5)
    u, o = rng.normal(size=(9, 40)), rng.normal(size=(7, 40))
    u[:, 5:10] += 2.0
    u[:, 10:15] *= 3.0
    u[:, 15], o[:, 15] = 1.5, 1.5  # every margin equal: both Gaussians the same, s = 0
    u[:, 16] = -2.0  # one side constant
    o[:, 17] = 4.0
    u[:, 18:20] = np.round(u[:, 18:20])  # ties
    o[:, 18:20] = np.round(o[:, 18:20])
    fast = ulira(u, o, seed=3).bacc
    np.testing.assert_allclose(fast, ulira_reference(u, o, seed=3), atol=1e-12)
    assert fast[15] == 0.5 and np.isfinite(ulira(u, o).pos).all()
    assert fast[16] == 1.0  # a constant side against a spread one is told apart
    np.testing.assert_allclose(ulira(u[:2], o[:2]).bacc, ulira_reference(u[:2], o[:2]), atol=1e-12)


def test_ulira_guards_zero_variance_and_small_groups():
    """All margins equal (σ² = 0): the floor keeps every score finite; equal constants are
    indistinguishable (0.5), different constants are told apart (1.0)."""
    same = ulira(np.full((4, 3), 2.0), np.full((4, 3), 2.0))
    assert np.isfinite(same.pos).all() and (same.pos == 0).all() and (same.bacc == 0.5).all()
    apart = ulira(np.full((4, 3), 2.0), np.full((4, 3), 2.0 + 1e-2))
    assert (apart.bacc == 1.0).all() and VAR_FLOOR == 1e-6
    with pytest.raises(ConfigError, match="at least 2 models"):
        ulira(np.zeros((1, 3)), np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        ulira(np.full((4, 3), np.nan), np.zeros((4, 3)))


def test_split_is_seeded_disjoint_and_shares_the_oracle_half():
    shadow, target = half_split(7, seed=4, side=1)
    assert len(shadow) == 3 and len(target) == 4
    assert sorted([*shadow, *target]) == list(range(7))
    again = half_split(7, seed=4, side=1)
    np.testing.assert_array_equal(shadow, again[0])
    assert not np.array_equal(half_split(100, 4, 0)[0], half_split(100, 4, 1)[0])


def test_balanced_accuracy_and_tpr_by_hand():
    pos = np.array([[1.0, -1.0], [2.0, 0.0]])  # two target models, two points
    neg = np.array([[-1.0, 0.0], [3.0, -2.0]])
    # point 0: TPR 1, TNR 1/2 → 0.75; point 1: TPR (0 + ½)/2 = ¼, TNR (½ + 1)/2 = ¾ → 0.5
    np.testing.assert_allclose(balanced_accuracy(pos, neg), [0.75, 0.5])
    neg = np.arange(100.0)  # 0..99: at 1% FPR the threshold is 98 (only 99 above it)
    assert tpr_at_fpr(np.array([98.0, 98.5, 99.5, 200.0]), neg, 0.01) == 0.75
    assert tpr_at_fpr(np.array([9.0, 9.5]), np.arange(10.0), 0.01) == 0.5  # N < 1/α: t = max


# ----------------------------------------------------------------------------- population MIA


def _population(gap: float, forget_like: str, n_models: int = 40, seed: int = 0):
    """Margins ``(n_models, 1777)``: retain (1307) ~ N(gap, 1), val (450) ~ N(0, 1), forget
    (20) like retain ("member") or like val ("non-member")."""
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n_models, 1777))
    forget, retain, val = np.arange(20), np.arange(20, 1327), np.arange(1327, 1777)
    m[:, retain] += gap
    if forget_like == "member":
        m[:, forget] += gap
    return m, forget, retain, val


def test_population_mia_detects_a_known_gap_and_balances_its_classes():
    """Gap 2 between members and non-members: the balanced threshold sits at the midpoint, 1,
    so members are called members with Φ(1) ≈ 0.84 and non-members with 1 − Φ(1) ≈ 0.16.
    Unweighted, retain's 1307:450 majority would move the threshold by ln(1307/450)/2 ≈ 0.53
    and call ~0.32 of the non-members members: the symmetry checks the balancing."""
    remembered = population_mia(*_population(2.0, "member"))
    forgotten = population_mia(*_population(2.0, "non-member"))
    assert remembered.forget_share.mean() == pytest.approx(0.84, abs=0.04)
    assert forgotten.forget_share.mean() == pytest.approx(0.16, abs=0.04)
    assert remembered.val_share.mean() == pytest.approx(0.16, abs=0.02)
    assert remembered.retain_share.mean() == pytest.approx(
        1 - remembered.val_share.mean(), abs=0.03
    )
    assert remembered.attack_bacc.mean() == pytest.approx(0.84, abs=0.02)
    assert remembered.forget_member.shape == (40, 20)


@pytest.mark.parametrize("gap", [0.0, 0.7, 2.0, 6.0])
def test_population_mia_fits_what_scikit_learns_liblinear_fits(gap):
    """The lab's Newton fit, all models at once, against scikit-learn's ``liblinear`` solver
    (the same problem: L2 on weight and bias, C = 1, balanced class weights) run per model to a
    tight tolerance: the same weights and bias, and the same member calls on every point the
    two decision functions do not put within 1e-6 of the threshold."""
    from sklearn.linear_model import LogisticRegression

    from core.evaluation.audit_math import balanced_logistic

    m, forget, retain, val = _population(gap, "member", n_models=6, seed=3)
    res = population_mia(m, forget, retain, val)
    x = np.concatenate([m[:, retain], m[:, val]], axis=1)
    y = np.r_[np.ones(retain.size), np.zeros(val.size)]
    weight = np.where(y == 1, y.size / (2 * retain.size), y.size / (2 * val.size))
    for k in range(m.shape[0]):
        center, scale = x[k].mean(), x[k].std()
        clf = LogisticRegression(class_weight="balanced", solver="liblinear", tol=1e-12)
        clf.fit(((x[k] - center) / scale)[:, None], y)
        w, b = balanced_logistic(((x[k] - center) / scale)[None], 2 * y - 1, weight)
        assert w[0] == pytest.approx(clf.coef_[0, 0], abs=1e-6)
        assert b[0] == pytest.approx(clf.intercept_[0], abs=1e-6)
        z = clf.decision_function(((m[k] - center) / scale)[:, None])
        clear = np.abs(z) > 1e-6
        assert (res.forget_member[k] == (z[forget] > 0))[clear[forget]].all()
        assert res.retain_share[k] == pytest.approx((z[retain] > 0).mean(), abs=1 / retain.size)
        assert res.val_share[k] == pytest.approx((z[val] > 0).mean(), abs=1 / val.size)


def test_the_audits_import_no_scikit_learn():
    """A process that evaluates a run audits it: scikit-learn's import alone took 1-3 s of it
    on a 2-core machine, so the attack's fit is the lab's own (checked against it above)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, numpy as np; from core.evaluation.audits import compute_audits; "
            "from core.evaluation.audit_math import population_mia; "
            "m = np.random.default_rng(0).normal(size=(4, 30)); "
            "population_mia(m, np.arange(5), np.arange(5, 20), np.arange(20, 30)); "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('sklearn', 'scipy')))")  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]", res.stdout


def test_population_mia_sees_nothing_without_a_gap():
    """No gap: the attack has nothing to learn (balanced accuracy ≈ 0.5) and calls forget
    points members as often as it calls val points (its false positives); every model draws its
    threshold by chance, so the bound is on the mean over 40 models of a share of 20 points:
    sd ≤ √(0.25/20/40) ≈ 0.018, allowed 0.1."""
    res = population_mia(*_population(0.0, "member"))
    assert abs(res.attack_bacc.mean() - 0.5) < 0.03
    assert abs(res.forget_share.mean() - res.val_share.mean()) < 0.1
    flat = np.zeros((3, 1777))
    const = population_mia(flat, np.arange(20), np.arange(20, 1327), np.arange(1327, 1777))
    assert not const.forget_member.any()  # nothing to learn: nobody is called a member
    with pytest.raises(ConfigError, match="forget, retain and val"):
        population_mia(flat, [], np.arange(20, 1327), np.arange(1327, 1777))


# ----------------------------------------------------------------------------- stored, tiny lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from core.evaluation.run import evaluate
    from tests.lab_fixtures import tiny_lab

    lab = tiny_lab(tmp_path_factory.mktemp("audit") / "lab.duckdb")
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    return lab


def _copy(lab, tmp_path):
    from core.store.db import Store

    shutil.copy(lab["store"].path, tmp_path / "lab.duckdb")
    shutil.copytree(lab["store"].files_dir, tmp_path / "lab.files")
    return Store(tmp_path / "lab.duckdb")


def test_evaluate_stores_audits_computed_from_the_stored_margins(lab):
    from core.evaluation.audits import audit_results, audit_summary
    from core.evaluation.run import evaluation_margins
    from core.zoo.build import load_margins

    store, run = lab["store"], lab["run_id"]
    res = audit_results(store, run)
    assert res is not None
    pts = res["points"]
    np.testing.assert_array_equal(pts["point"], lab["forget"])
    u, o = evaluation_margins(store, run)
    f = load_margins(store, lab["floor"])
    cols = lab["forget"]
    np.testing.assert_allclose(pts["ulira_bacc"], ulira_reference(u[:, cols], o[:, cols]))
    np.testing.assert_allclose(pts["ulira_floor_bacc"], ulira_reference(f[:, cols], o[:, cols]))
    summary = audit_summary(store, run)
    assert list(summary) == ["ulira", "mia"]
    assert summary["ulira"]["bacc_mean"]["value"] == pytest.approx(pts["ulira_bacc"].mean())
    mia = population_mia(u, cols, np.setdiff1d(np.arange(1347), cols), np.arange(1347, 1797))
    assert summary["mia"]["forget_member_share"]["value"] == pytest.approx(mia.forget_share.mean())
    models = res["models"]
    assert (models["side"] == "unlearned").sum() == 6 and (models["side"] == "floor").sum() == 6
    assert res["config"]["ulira_shadow"] == {"unlearned": 3, "oracle": 3, "floor": 3}
    for audit in summary.values():  # shares and accuracies (2-epoch models: no verdict here)
        assert all(0 <= v[k] <= 1 for v in audit.values() for k in ("value", "floor"))


def test_audit_run_is_idempotent_and_recomputes_on_request(lab, tmp_path):
    from core.evaluation.audits import audit_run

    store = _copy(lab, tmp_path)
    run = lab["run_id"]

    def rows():
        return store.query_df(
            "SELECT (SELECT count(*) FROM audit_points) p, (SELECT count(*) FROM audit_summaries) s,"
            " (SELECT count(*) FROM audit_models) m, (SELECT max(created_at) FROM audits) t"
        ).iloc[0]

    before = rows()
    first = audit_run(store, run)
    assert audit_run(store, run) == first and rows().equals(before)  # nothing written again
    again = audit_run(store, run, recompute=True)
    after = rows()
    assert again == first  # same arrays, same seed: the same figures
    assert (after["p"], after["s"], after["m"]) == (20, 7, 12) and after["t"] > before["t"]


def test_a_run_stored_before_audits_is_audited_on_demand(lab, tmp_path):
    """Evaluations stored before migration 6 have no audit rows: the compare table shows NaN,
    ``audit --all`` and a reused ``evaluate`` fill them in; deleting removes them."""
    from core.evaluation.audits import AUDIT_TABLES, audit_summary, runs_to_audit
    from core.evaluation.cleanup import delete_forget_set
    from core.evaluation.compare import AUDIT_COLUMNS, runs_table
    from core.evaluation.run import evaluate
    from tests.commands.test_cli import cli

    store = _copy(lab, tmp_path)
    run = lab["run_id"]
    with store.transaction() as con:
        for table in AUDIT_TABLES:
            con.execute(f"DELETE FROM {table}")
    df = runs_table(store, lab["forget_set"])
    assert df[list(AUDIT_COLUMNS)].isna().all().all()
    assert runs_to_audit(store, lab["forget_set"]) == [run] and runs_to_audit(store, 999) == []
    res = cli("audit", "--all", "--forget-set", str(lab["forget_set"]), "--json", db=store.path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)["audits"]
    assert [a["run_id"] for a in out] == [run] and out[0]["audit"] == audit_summary(store, run)
    row = runs_table(store, lab["forget_set"]).iloc[0]
    assert row["ulira_bacc_mean"] == out[0]["audit"]["ulira"]["bacc_mean"]["value"]
    assert row["mia_floor_forget_member_share"] == pytest.approx(
        out[0]["audit"]["mia"]["forget_member_share"]["floor"]
    )
    with store.transaction() as con:
        con.execute("DELETE FROM audits")
        con.execute("DELETE FROM audit_summaries")
    assert evaluate(store, lab["forget_set"], "do_nothing") == run  # reused, and audited
    assert audit_summary(store, run) is not None
    delete_forget_set(store, lab["forget_set"])
    for table in AUDIT_TABLES:
        assert store.query_df(f"SELECT count(*) n FROM {table}")["n"][0] == 0


def test_cli_audit_text_json_and_refusals(lab, tmp_path):
    from tests.commands.test_cli import cli

    store = _copy(lab, tmp_path)
    run = lab["run_id"]
    res = cli("audit", str(run), db=store.path)
    assert res.returncode == 0, res.stderr
    assert f"evaluation {run}" in res.stdout and "bacc_mean" in res.stdout
    assert "forget_member_share" in res.stdout
    res = cli("audit", "999", "--json", db=store.path)
    assert res.returncode == 2 and "error: there is no evaluation with id 999" in res.stderr
    assert res.stdout == ""
    res = cli("audit", db=store.path)
    assert res.returncode == 2 and "a run id or --all" in res.stderr
    res = cli("audit", str(run), "--all", db=store.path)
    assert res.returncode == 2 and "a run id or --all" in res.stderr
    res = cli("audit", str(run), "--forget-set", "1", db=store.path)
    assert res.returncode == 2 and "--forget-set goes with --all" in res.stderr
    res = cli("evaluate", "--forget-set", str(lab["forget_set"]), "--json", db=store.path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["run_id"] == run and set(out["audit"]) == {"ulira", "mia"}
    assert out["audit"]["ulira"]["tpr_at_1pct_fpr"]["floor"] is not None


def test_schema_6_adds_the_audit_tables_to_an_old_lab(tmp_path):
    import duckdb

    from core.store.db import Store
    from core.store.schema import MIGRATIONS

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for m in MIGRATIONS[:5]:
        m(con)
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    con.close()
    store = Store(path)
    with store.transaction() as c:  # any write migrates
        c.execute("SELECT 1")
    assert store.schema_version() == len(MIGRATIONS) >= 6
    cols = store.query_df("DESCRIBE audit_points")["column_name"].tolist()
    assert cols == ["run_id", "point", "ulira_bacc", "ulira_floor_bacc", "mia_member_share",
                    "mia_floor_member_share"]  # fmt: skip
    assert store.query_df("SELECT count(*) n FROM audit_summaries")["n"][0] == 0


# ----------------------------------------------------------------------------- the pages


def _app(lab, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    store = _copy(lab, tmp_path)
    monkeypatch.setenv("LAB_DB", str(store.path))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    return store, at


def test_klom_explorer_shows_the_audits_and_the_points_u_lira(lab, tmp_path, monkeypatch):
    from core.evaluation.audits import audit_results

    store, at = _app(lab, tmp_path, monkeypatch)
    at.switch_page("views/klom.py").run()
    assert not at.exception, at.exception
    res = audit_results(store, lab["run_id"])
    table = at.dataframe[1].value  # after the KLoM summary
    assert table["audit"].tolist() == ["U-LiRA"] * 3 + ["MIA"] * 4
    np.testing.assert_allclose(table["method"], res["summaries"]["value"])
    np.testing.assert_allclose(table["floor"], res["summaries"]["floor"])
    point = int(lab["forget"][2])
    at.number_input(key="klom_point").set_value(point).run()
    assert not at.exception
    r = res["points"].set_index("point").loc[point]
    text = "\n".join(m.value for m in at.markdown)
    assert (f"U-LiRA balanced accuracy **{r['ulira_bacc']:.2f}** "
            f"(floor {r['ulira_floor_bacc']:.2f}") in text  # fmt: skip
    assert "#### Membership audits" in "\n".join(m.value for m in at.expander[0].markdown)
    retain = int(np.setdiff1d(np.arange(1347), lab["forget"])[0])
    at.number_input(key="klom_point").set_value(retain).run()
    text = "\n".join(m.value for m in at.markdown)
    assert f"**point {retain}** · split **retain**" in text
    assert "U-LiRA balanced accuracy **" not in text  # only forget points are audited


def test_klom_explorer_says_how_to_audit_an_old_run(lab, tmp_path, monkeypatch):
    from core.evaluation.audits import AUDIT_TABLES

    store = _copy(lab, tmp_path)
    with store.transaction() as con:
        for table in AUDIT_TABLES:
            con.execute(f"DELETE FROM {table}")
    shutil.copy(store.path, tmp_path / "old.duckdb")
    shutil.copytree(store.files_dir, tmp_path / "old.files")
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    monkeypatch.setenv("LAB_DB", str(tmp_path / "old.duckdb"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.switch_page("views/klom.py").run()
    assert not at.exception, at.exception
    captions = "\n".join(c.value for c in at.caption)
    assert f"python -m core audit {lab['run_id']}" in captions
    assert len(at.dataframe) == 1


def test_compare_page_plots_the_audits(lab, tmp_path, monkeypatch):
    from dashboard.compare_charts import AUDIT_SCORES, SCORES, axis_title, frontier_chart

    store, at = _app(lab, tmp_path, monkeypatch)
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"ulira_bacc_mean", "mia_forget_member_share"} <= set(table.columns)
    for score in AUDIT_SCORES:
        assert score in SCORES
        at.radio(key="cmp_score").set_value(score).run()
        assert not at.exception, at.exception
    from core.evaluation.compare import runs_table

    runs = runs_table(store, lab["forget_set"])
    fig = frontier_chart(runs, "ulira_bacc_mean")
    assert fig.layout.yaxis.title.text == axis_title("ulira_bacc_mean")
    # the MIA axis ranks the distance to the oracles' share (a share below theirs gives points
    # away too), so lower is better there as on every other axis
    excess = (runs["mia_forget_member_share"] - runs["mia_floor_forget_member_share"]).abs()
    assert np.allclose(runs["mia_forget_share_excess"], excess, equal_nan=True)
    assert "U-LiRA" in fig.layout.yaxis.title.text
    floor = [s for s in fig.layout.shapes if s.line.dash == "dashdot"]  # the noise floor's line
    assert floor and floor[0].y0 == pytest.approx(runs["ulira_floor_bacc_mean"].mean())
    assert frontier_chart(runs.assign(ulira_tpr1=np.nan), "ulira_tpr1").data == ()

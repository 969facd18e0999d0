"""The guided tour on Home: the seed paper's story as six steps, each one click into the right
page with the right selection, each marked done from what the lab has stored.

1. build the demo → 2. see do-nothing fail point by point (KLoM explorer) → 3. unlearn with
gradient descent, Oracle Matching and DMM (Unlearn) → 4. compare them against compute
(Compare) → 5. see why with a datamodel (Attribution) → 6. the linear model's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dashboard.components import plain

TOUR_SET = "random-10"  # the demo's forget set the tour follows (any forget set will do)
TOUR_METHODS = (
    ("gradient_descent", "gradient descent"),
    ("oracle_matching", "Oracle Matching"),
    ("dm_matching", "DMM"),
)


@dataclass
class Step:
    """One step: its title, what to look for, whether the lab has done it, and its links
    ``(page, label, query params)``."""

    title: str
    text: str
    done: bool
    links: list[tuple[str, str, dict]] = field(default_factory=list)


def tour_forget_set(evals: pd.DataFrame) -> tuple[int, str] | None:
    """The forget set the tour follows: the demo's ``random-10`` when stored, else the forget
    set of the newest evaluation; ``(id, name)`` or None on an empty lab."""
    if evals.empty:
        return None
    demo = evals[evals["forget_set"] == TOUR_SET]
    row = (demo if len(demo) else evals).iloc[0]
    return int(row["forget_set_id"]), str(row["forget_set"])


def steps(evals: pd.DataFrame, datamodels: pd.DataFrame, linear_runs: int) -> list[Step]:
    """The six steps for a lab with these evaluations (``list_evaluations``), datamodels
    (``list_datamodels``) and number of stored linear-study runs."""
    fs = tour_forget_set(evals)
    mine = evals[evals["forget_set_id"] == fs[0]] if fs else evals.iloc[0:0]
    nothing = mine.loc[mine["method"] == "do_nothing", "run_id"]
    where = f"forget set #{fs[0]} ({plain(fs[1])})" if fs else "a forget set"
    q_fs = {"forget_set": str(fs[0])} if fs else {}
    ran = set(mine["method"])
    out = [
        Step("Build the quick demo",
             "Originals, three forget sets with their oracles, and a do-nothing evaluation of "
             "each: the button below (a smaller demo is quicker and noisier).",
             fs is not None),
        Step("See doing nothing fail, point by point",
             f"On {where}, the forget points' KLoM sits far above the noise floor: the originals "
             "still remember them. Click a dot to see one point's margins.",
             len(nothing) > 0,
             [("views/klom.py", "KLoM explorer: do-nothing", {"run": str(int(nothing.iloc[0]))})]
             if len(nothing) else []),
        Step("Unlearn with gradient descent, Oracle Matching and DMM",
             f"Run each on {where}. Oracle Matching needs held-out oracles, DMM a logits "
             "datamodel: the Unlearn page builds what is missing first.",
             all(m in ran for m, _ in TOUR_METHODS),
             [("views/unlearn.py", f"Unlearn: {name}{' ✓' if m in ran else ''}",
               {**q_fs, "method": m}) for m, name in TOUR_METHODS] if fs else []),
        Step("Compare them against compute",
             "KLoM against the share of retraining each run spent: matching reaches the floor "
             "at a fraction of the cost where gradient descent stalls.",
             all(m in ran for m, _ in TOUR_METHODS),
             [("views/compare.py", "Compare the runs", q_fs)] if fs else []),
        Step("See why with Attribution",
             "A datamodel says which training points move each point's margin: the forget "
             "set's own points, and the points it moves most, are the ones to unlearn.",
             not datamodels.empty,
             [("views/attribution.py", "Attribution", {})]),
        Step("The linear model's reason",
             "In a ridge regression, matching the oracle's outputs converges to the retrained "
             "model while gradient descent on the retain set stalls.",
             linear_runs > 0,
             [("views/linear.py", "Linear model", {})]),
    ]  # fmt: skip
    return out

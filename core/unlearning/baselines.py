"""Reference points for every comparison."""

from __future__ import annotations

from core.unlearning.base import UnlearnContext, UnlearnResult, register


@register
def do_nothing(ctx: UnlearnContext) -> UnlearnResult:
    """Keep the original models as they are: the upper bound on how far from the oracle one can be.

    Costs nothing (compute 0); its forget-set KLoM shows how much the forget set changed the
    models in the first place, its val KLoM should sit at the noise floor.
    """
    return UnlearnResult(
        margins=ctx.original_margins(), correct=ctx.original_correct(), compute_cost=0.0
    )

"""The quick preset, end to end on digits: originals, three forget sets with their oracles, and
a do-nothing evaluation of each. Every step is idempotent: a rerun reuses what is stored and
resumes what was interrupted.
"""

from __future__ import annotations

from collections.abc import Callable

from core.common.config import check_int
from core.common.device import resolve_device
from core.evaluation.run import evaluate
from core.forget.oracles import DEFAULT_MODELS, build_oracles, ensure_model_set
from core.forget.sets import QUICK_PRESETS, digits_preset
from core.forget.store import find_forget_set, save_forget_set
from core.store.db import Store
from core.zoo.build import Progress
from core.zoo.data import load_dataset
from core.zoo.recipe import default_train_config


def quick_demo(
    store: Store,
    n_models: int = DEFAULT_MODELS,
    device: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    presets: tuple[str, ...] = QUICK_PRESETS,
    epochs: int | None = None,
) -> dict:
    """Run the quick preset; returns ``{preset name: evaluation run id}`` plus set ids.

    ``epochs`` overrides the digits recipe (the oracles always copy the originals' recipe).
    Originals of another recipe or size already stored are left alone: a set of this recipe
    and size is built (or reused) instead.
    """
    check_int("models", n_models, 2, 100_000)  # the noise floor needs two models a side
    if epochs is not None:
        check_int("epochs", epochs, 1, 10_000)
    resolve_device(device)  # an unknown device is refused before anything is written
    report = progress or (lambda f, m: None)
    # rough shares of the work: originals 1 part, each forget set's two oracle groups 2 parts
    parts = 1 + 2 * len(presets)
    train = default_train_config("digits")
    if epochs is not None:
        train = train.replace(epochs=epochs)  # shorter recipes for tests and quick looks
    original = ensure_model_set(
        store, "original", "digits", train=train, n_models=n_models, device=device,
        progress=lambda f, m: report(f / parts, f"originals: {m}"), should_stop=should_stop,
    )  # fmt: skip
    data = load_dataset("digits", "cpu")
    pixels = data.raw_train.reshape(data.n_train, -1)
    out: dict = {"original_set_id": original, "evaluations": {}}
    for k, name in enumerate(presets):
        fs_id = find_forget_set(store, "digits", name)
        if fs_id is None:
            fs_id = save_forget_set(
                store, digits_preset(name, data.y_train.numpy(), pixels), "digits"
            )
        base = 1 + 2 * k
        build_oracles(
            store, fs_id, n_models, device,
            progress=lambda f, m, b=base, n=name: report((b + 2 * f) / parts, f"{n}: {m}"),
            should_stop=should_stop, original_set_id=original,
        )  # fmt: skip
        # a stored do-nothing evaluation of these sets is reused, not duplicated
        run_id = evaluate(store, fs_id, "do_nothing", device, original_set_id=original)
        out["evaluations"][name] = {"forget_set_id": fs_id, "run_id": run_id}
    report(1.0, "demo ready: open the KLoM explorer")
    return out

"""Model sets built as Ray tasks land in the store exactly as local builds (issue 12).

One local Ray instance (2 CPUs) is shared by the module; every build is a few digits models
for one epoch. Skipped where Ray is not installed.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

ray = pytest.importorskip(
    "ray", reason="Ray is not installed (pip install -r requirements-ray.txt)"
)

from core.cli import main  # noqa: E402
from core.common.errors import ConfigError  # noqa: E402
from core.store.db import Store  # noqa: E402
from core.zoo.build import build_model_set, create_model_set, load_margins  # noqa: E402
from core.zoo.executors import RayExecutor  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.lab_fixtures import TINY  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.xdist_group("ray")]  # one instance
ONE_EPOCH = TINY.replace(epochs=1)
SET = dict(kind="subset", train=ONE_EPOCH, n_models=4, fraction=0.5, seed=5, chunk_size=2)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module; its workers import the lab from this checkout."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), old]))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def local_set(tmp_path_factory):
    """The reference: the set built in this process."""
    store = Store(tmp_path_factory.mktemp("local") / "lab.duckdb")
    set_id = _create(store)
    build_model_set(store, set_id)
    return store, set_id


def _create(store: Store, executor=None) -> int:
    s = dict(SET)
    return create_model_set(store, s.pop("kind"), s.pop("train"), s.pop("n_models"), **s,
                            executor=executor)  # fmt: skip


def _chunks(store: Store, set_id: int):
    return store.query_df(
        "SELECT * EXCLUDE (wall_time_s, set_id, created_at) FROM model_chunks WHERE set_id = ? ORDER BY chunk",
        [set_id],
    )


def _assert_same_set(a: tuple[Store, int], b: tuple[Store, int]) -> None:
    """Same rows (but wall times), same margins, byte-identical array and weight files."""
    (sa, ia), (sb, ib) = a, b
    ra, rb = _chunks(sa, ia), _chunks(sb, ib)
    assert ra.drop(columns=[c for c in ra if c.endswith("_file")]).equals(
        rb.drop(columns=[c for c in rb if c.endswith("_file")])
    )
    np.testing.assert_array_equal(load_margins(sa, ia), load_margins(sb, ib))
    for fa, fb in zip(ra.filter(like="_file").values.ravel(), rb.filter(like="_file").values.ravel(),
                      strict=True):  # fmt: skip
        assert fa.replace(f"/{ia}/", "/") == fb.replace(f"/{ib}/", "/")
        assert sa.file_path(fa).read_bytes() == sb.file_path(fb).read_bytes(), fa
    wa = sa.load_tensors(ra["weights_file"][0])
    wb = sb.load_tensors(rb["weights_file"][0])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ray_build_equals_the_local_one(ray_instance, local_set, tmp_path):
    store = Store(tmp_path / "lab.duckdb")
    ex = RayExecutor(max_retries=1)
    set_id = _create(store, ex)
    ms = build_model_set(store, set_id, executor=ex)
    assert ms.status == "complete" and ms.device == "cpu"
    _assert_same_set(local_set, (store, set_id))


def crash_once(spec, progress, should_stop, *, fn, marker: str, how: str):
    """A chunk task whose first attempt (of all tasks) dies: the worker process exits, or the
    task raises."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return fn(spec, progress, should_stop)
    if how == "exit":
        os._exit(1)
    if how == "config":
        raise ConfigError("bad input, every time")
    raise RuntimeError("a transient failure")


class FlakyRay(RayExecutor):
    """Runs every task through ``crash_once``."""

    def __init__(self, marker, how: str, **kw) -> None:
        super().__init__(**kw)
        self.marker, self.how = str(marker), how

    def run(self, fn, tasks, **kw):
        return super().run(
            partial(crash_once, fn=fn, marker=self.marker, how=self.how), tasks, **kw
        )


@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_lost_worker_or_failed_task_is_retried(ray_instance, local_set, tmp_path, how):
    """exit: the worker dies, Ray retries the task; raise: the driver resubmits it."""
    store, marker = Store(tmp_path / "lab.duckdb"), tmp_path / "crashed"
    ex = FlakyRay(marker, how, max_retries=1)
    set_id = _create(store, ex)
    build_model_set(store, set_id, executor=ex)
    assert marker.exists()  # one attempt did fail
    _assert_same_set(local_set, (store, set_id))


def killed_mid_chunk(spec, progress, should_stop, *, fn, pid_file: str):
    """The first attempt (of all tasks) computes its chunk, throws it away, says its pid and
    trains again until the test kills this worker process; later attempts run as usual."""
    marker = pid_file + ".first"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return fn(spec, progress, should_stop)
    fn(spec, progress, should_stop)
    with open(pid_file + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    while True:
        fn(spec, progress, should_stop)


class KilledRay(RayExecutor):
    def __init__(self, pid_file, **kw) -> None:
        super().__init__(**kw)
        self.pid_file = str(pid_file)

    def run(self, fn, tasks, **kw):
        return super().run(partial(killed_mid_chunk, fn=fn, pid_file=self.pid_file), tasks, **kw)


def test_a_worker_killed_mid_chunk_is_retried(ray_instance, local_set, tmp_path):
    """kill -9 of the Ray worker process while it trains a chunk: Ray runs the chunk again on
    another worker; the stored set equals the local build (rows, margins, file bytes), the
    file is whole, and nothing of the lost attempt was stored."""
    import signal
    import threading

    from tests.fault_fixtures import assert_whole, wait_for

    store, pid_file = Store(tmp_path / "lab.duckdb"), tmp_path / "worker.pid"
    killed = []

    def killer():
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=300))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    ex = KilledRay(pid_file, max_retries=1)
    set_id = _create(store, ex)
    build_model_set(store, set_id, executor=ex)
    thread.join(10)
    assert killed  # a worker did die mid-chunk
    _assert_same_set(local_set, (store, set_id))
    assert_whole(store)


def test_a_lab_error_is_not_retried_and_nothing_is_stored(ray_instance, tmp_path):
    store = Store(tmp_path / "lab.duckdb")
    ex = FlakyRay(tmp_path / "crashed", "config", max_retries=3)
    set_id = _create(store, ex)
    with pytest.raises(ConfigError, match="bad input"):
        build_model_set(store, set_id, executor=ex)
    rows = store.query_df("SELECT chunk FROM model_chunks WHERE set_id = ?", [set_id])
    assert len(rows) <= 1  # the other chunk may have been committed; the failed one is not


def test_devices_and_chunks_on_ray(ray_instance, tmp_path):
    ex = RayExecutor()
    assert ex.slots() == 2 and ex.device(None) == "cpu"
    with pytest.raises(ConfigError, match="--gpus-per-task"):
        ex.device("cuda")
    with pytest.raises(ConfigError, match="0 GPUs"):
        RayExecutor(gpus_per_task=0.5).device(None)
    with pytest.raises(ConfigError, match="would not use"):
        RayExecutor(gpus_per_task=0.5).device("cpu")
    store = Store(tmp_path / "lab.duckdb")  # default chunks: the models over the 2 CPUs
    set_id = create_model_set(store, "original", ONE_EPOCH, 6, executor=ex)
    assert (
        store.query_df("SELECT chunk_size FROM model_sets WHERE id = ?", [set_id]).iloc[0, 0] == 3
    )


def test_cli_train_and_oracles_with_ray(ray_instance, local_set, tmp_path, capsys):
    db = str(tmp_path / "lab.duckdb")
    args = ["--db", db, "--kind", "subset", "--fraction", "0.5", "--models", "4", "--epochs",
            "1", "--seed", "5", "--chunk-size", "2", "--executor", "ray", "--json"]  # fmt: skip
    assert main(["train", *args]) == 0
    store = Store(db)
    _assert_same_set(local_set, (store, 1))
    assert main(["train", "--db", db, "--models", "2", "--epochs", "1", "--executor", "ray"]) == 0
    assert main(["forget-set", "create", "--db", db, "--k", "20", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["oracles", "--db", db, "--forget-set", "1", "--executor", "ray", "--json"]) == 0
    assert '"floor_set_id": 4' in capsys.readouterr().out
    assert load_margins(store, 4).shape == (2, 1347 + 450)


def test_an_unreachable_cluster_is_refused_fast(tmp_path, capsys):
    code = main(["train", "--db", str(tmp_path / "lab.duckdb"), "--executor", "ray",
                 "--address", "127.0.0.1:1"])  # fmt: skip
    assert code == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
    assert (
        not (tmp_path / "lab.duckdb").exists()
        or Store(tmp_path / "lab.duckdb").query_df("SELECT count(*) FROM model_sets").iloc[0, 0]
        == 0
    )


def sleepy(task, progress, should_stop):
    import time

    time.sleep(60)


def test_a_stopped_build_cancels_its_tasks(ray_instance):
    """should_stop (a job's cancel) ends the wait at once and cancels what is still running."""
    import time

    from core.zoo.ensemble import Cancelled

    t0, calls = time.perf_counter(), []
    with pytest.raises(Cancelled):
        list(
            RayExecutor().run(sleepy, [0, 1], should_stop=lambda: calls.append(1) or len(calls) > 2)
        )
    assert time.perf_counter() - t0 < 10


def test_cli_datamodels_trains_its_subset_models_with_ray(ray_instance, tmp_path):
    """The subset models of a datamodel train as Ray tasks (2 chunks on the 2 CPUs) and equal
    the same set built here in one chunk; the fit itself runs in this process."""
    from core.zoo.build import get_model_set

    db = str(tmp_path / "lab.duckdb")
    assert main(["train", "--db", db, "--models", "2", "--epochs", "1", "--seed", "0"]) == 0
    assert main(["datamodels", "fit", "--db", db, "--models", "20", "--executor", "ray"]) == 0
    store = Store(db)
    sid = int(store.query_df("SELECT id FROM model_sets WHERE kind = 'subset'").iloc[0, 0])
    ms = get_model_set(store, sid)
    assert ms.status == "complete" and ms.chunk_size == 10
    here = Store(tmp_path / "here.duckdb")
    local = create_model_set(here, "subset", ms.train, 20, fraction=ms.fraction, seed=ms.seed)
    build_model_set(here, local)
    np.testing.assert_array_equal(load_margins(here, local), load_margins(store, sid))


# ---- unlearning sweeps: every grid point a Ray task, stored here as it arrives ----

GA = dict(method="gradient_ascent", grid=[{"budget": 0.5, "lr": "1.0", "momentum": "0.99"},
                                           {"budget": 0.5, "lr": "0.001", "momentum": "0.99"}])  # fmt: skip
OM = dict(method="oracle_matching", grid=[{"budget": 0.05}, {"budget": 0.1, "target": "mean"}])
DM = dict(method="dm_direct", grid=[{"top_k": "0"}, {"top_k": "5"}])


@pytest.fixture(scope="module")
def sweep_lab(tmp_path_factory):
    """Originals (4 models), a forget set of 20 and its oracle groups, and a margin datamodel
    from 20 subset models, all tiny."""
    from tests.lab_fixtures import tiny_datamodel, tiny_lab

    lab = tiny_lab(tmp_path_factory.mktemp("sweep") / "lab.duckdb", n_models=4)
    tiny_datamodel(lab["store"], lab["original"], "margin", 20)
    return lab


def _copy(lab: dict, path) -> Store:
    import shutil

    shutil.copy(lab["store"].path, path / "lab.duckdb")
    shutil.copytree(lab["store"].files_dir, path / "lab.files")
    return Store(path / "lab.duckdb")


def _sweep(store: Store, lab: dict, case: dict, executor=None) -> list:
    from core.jobs.sweeps import run_sweep

    out = run_sweep(store, lab["forget_set"], case["method"], case["grid"], executor=executor)
    return [o for _, o in sorted(out, key=lambda t: t[0])]


def _stored_run(store: Store, outcome) -> dict:
    """A grid point's stored rows (ids aside) and the bytes of its array files."""
    from core.common.errors import Diverged

    if isinstance(outcome, Diverged):
        row = store.query_df("SELECT kind, config, summary, device FROM runs WHERE id = ?",
                             [outcome.run_id])  # fmt: skip
        return {"diverged": row}
    q = lambda sql: store.query_df(sql, [outcome])  # noqa: E731
    ev = q("SELECT * EXCLUDE (run_id, margins_file) FROM evaluations WHERE run_id = ?")
    files = store.query_df("SELECT margins_file FROM evaluations WHERE run_id = ?", [outcome])
    chunks = store.query_df(
        "SELECT * EXCLUDE (wall_time_s) FROM model_chunks WHERE set_id = ?",
        [None if pd.isna(ev["unlearned_set_id"][0]) else int(ev["unlearned_set_id"][0])],
    )
    blobs = [store.file_path(f).read_bytes() for f in files["margins_file"]]
    blobs += [store.file_path(f).read_bytes() for f in chunks.filter(like="_file").values.ravel()]
    return {
        "evaluation": ev,
        "run": q("SELECT kind, config, summary, device FROM runs WHERE id = ?"),
        "set": q("""SELECT * EXCLUDE (created_at) FROM model_sets
                    WHERE id = (SELECT unlearned_set_id FROM evaluations WHERE run_id = ?)"""),
        "points": q("SELECT * EXCLUDE (run_id) FROM klom_points WHERE run_id = ? ORDER BY point"),
        "summaries": q("""SELECT * EXCLUDE (run_id) FROM klom_summaries WHERE run_id = ?
                          ORDER BY split, metric"""),
        "audits": q("""SELECT * EXCLUDE (run_id) FROM audit_summaries WHERE run_id = ?
                       ORDER BY audit, metric"""),
        "audit_points": q(
            "SELECT * EXCLUDE (run_id) FROM audit_points WHERE run_id = ? ORDER BY point"
        ),
        "bytes": blobs,
    }


@pytest.mark.parametrize("case", [GA, OM, DM], ids=["ga_diverges_once", "om_heldout", "dm"])
def test_a_ray_sweep_stores_what_a_local_one_does(ray_instance, sweep_lab, tmp_path, case):
    """Same rows (ids aside) and byte-identical margins and weights; the diverged point recorded
    as locally. The local reference runs on one thread, as a 1-CPU task does."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    here, there = _copy(sweep_lab, tmp_path / "a"), _copy(sweep_lab, tmp_path / "b")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = _sweep(here, sweep_lab, case)
    finally:
        torch.set_num_threads(threads)
    remote = _sweep(there, sweep_lab, case, RayExecutor(max_retries=1))
    assert [type(o) for o in local] == [type(o) for o in remote]
    for a, b in zip(local, remote, strict=True):
        sa, sb = _stored_run(here, a), _stored_run(there, b)
        assert sa.keys() == sb.keys()
        for key in sa:
            if key == "bytes":
                assert sa[key] == sb[key]
            else:
                pd.testing.assert_frame_equal(sa[key], sb[key], check_exact=True, obj=key)
    if case is GA:
        assert "diverged" in _stored_run(there, remote[0])
    sets = lambda s: s.query_df("SELECT id, status FROM model_sets ORDER BY id").to_dict("records")  # noqa: E731
    assert sets(here) == sets(there)  # the same sets (ids, statuses): none half-made


def test_a_lost_sweep_worker_is_retried_and_a_rerun_is_idempotent(
    ray_instance, sweep_lab, tmp_path, capsys
):
    """A worker that dies mid-sweep is retried by Ray; the CLI's rerun of the stored grid
    trains nothing and reports the same runs."""
    import json

    store, marker = _copy(sweep_lab, tmp_path), tmp_path / "crashed"
    first = _sweep(store, sweep_lab, GA, FlakyRay(marker, "exit", max_retries=1))
    assert marker.exists()  # one attempt did die
    n = store.query_df("SELECT count(*) FROM runs").iloc[0, 0]
    capsys.readouterr()
    args = ["unlearn", "--db", str(tmp_path / "lab.duckdb"), "--forget-set",
            str(sweep_lab["forget_set"]), "--method", "gradient_ascent", "--budget", "0.5",
            "--param", "lr=1.0,0.001", "--param", "momentum=0.99", "--executor", "ray", "--json"]  # fmt: skip
    assert main(args) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["status"] for r in runs] == ["diverged", "ok"]
    assert [r["run_id"] for r in runs] == [first[0].run_id, first[1]]
    assert store.query_df("SELECT count(*) FROM runs").iloc[0, 0] == n  # nothing run again


def test_a_lab_error_in_a_sweep_task_is_not_retried_and_nothing_half_stored(
    ray_instance, sweep_lab, tmp_path
):
    store = _copy(sweep_lab, tmp_path)
    sets = store.query_df("SELECT id FROM model_sets")["id"].tolist()
    ex = FlakyRay(tmp_path / "crashed", "config", max_retries=3)  # a retry would succeed
    with pytest.raises(ConfigError, match="bad input"):
        _sweep(store, sweep_lab, {"method": "gradient_descent", "grid": [{"budget": 0.05}]}, ex)
    assert store.query_df("SELECT id FROM model_sets")["id"].tolist() == sets
    assert store.query_df("SELECT count(*) FROM evaluations").iloc[0, 0] == 0

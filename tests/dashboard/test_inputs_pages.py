"""Bad query parameters on the pages that read them (``?run=``, ``?point=``): the page opens
without a traceback, says what it ignored or shows its default, and stores nothing."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.evaluation.run import evaluate
from core.store.db import Store
from tests.conftest import ROOT
from tests.lab_fixtures import tiny_lab

APP = str(ROOT / "dashboard" / "app.py")
PAGES = ["views/klom.py", "views/attribution.py", "views/compare.py"]
BAD = [
    {"run": "abc"},
    {"run": "99999"},
    {"run": "-1"},
    {"point": "x"},
    {"point": "-5"},
    {"point": "10000000"},
    {"run": "1e3", "point": "1.5"},
]


@pytest.fixture(scope="module")
def lab_template(tmp_path_factory):
    lab = tiny_lab(tmp_path_factory.mktemp("q") / "lab.duckdb", n_models=4)
    lab["run_id"] = evaluate(lab["store"], lab["forget_set"], "do_nothing")
    return lab


@pytest.fixture
def lab(lab_template, tmp_path, monkeypatch):
    src = lab_template["store"]
    shutil.copy(src.path, tmp_path / "lab.duckdb")
    shutil.copytree(src.files_dir, tmp_path / "lab.files")
    monkeypatch.setenv("LAB_DB", str(tmp_path / "lab.duckdb"))
    return {**lab_template, "store": Store(tmp_path / "lab.duckdb")}


@pytest.mark.parametrize("page", PAGES)
def test_bad_query_parameters_open_the_page(page, lab):
    before = (lab["store"].path.stat().st_mtime_ns, lab["store"].path.stat().st_size)
    for query in BAD:
        at = AppTest.from_file(APP, default_timeout=120)
        for k, v in query.items():
            at.query_params[k] = v
        at.switch_page(page).run()
        assert not at.exception, (query, at.exception)
        assert all("Traceback" not in e.value for e in at.error), query
    after = (lab["store"].path.stat().st_mtime_ns, lab["store"].path.stat().st_size)
    assert after == before


@pytest.mark.parametrize("field,value", [("ms_dataset", "cifar10"), ("ms_device", "cuda")])
def test_models_page_refuses_a_build_it_cannot_run(field, value, lab, monkeypatch, tmp_path):
    """CIFAR-10 not on disk, or CUDA on a machine without it: one message, no set, no job."""
    import torch

    from core.jobs import queue as jobs

    monkeypatch.setenv("LAB_DATA_ROOT", str(tmp_path / "no-datasets"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    count = "SELECT count(*) FROM model_sets"
    with lab["store"].connect(read_only=True) as con:
        sets = con.execute(count).fetchone()[0]
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/models.py").run()
    at.selectbox(key=field).set_value(value)
    at.number_input(key="ms_models").set_value(2)
    at.button[0].click().run()
    assert not at.exception and at.error, at.exception
    assert "Nothing was built" in at.error[0].value
    assert ("CIFAR-10" if value == "cifar10" else "cuda") in at.error[0].value
    with lab["store"].connect(read_only=True) as con:
        assert con.execute(count).fetchone()[0] == sets
    assert jobs.list_jobs(lab["store"]).empty

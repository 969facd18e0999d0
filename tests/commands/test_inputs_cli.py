"""Bad values for every CLI flag: one ``error:`` line naming the input, exit 2, nothing stored.

Each case runs ``core.cli.main`` in this process on an empty database path; the database must
still hold no model set, forget set, evaluation or job afterwards (or not exist at all).
"""

from __future__ import annotations

import duckdb
import pytest

from core.cli import main

# (arguments, a word the message must contain)
CASES = [
    (["train", "--models", "0"], "models"),
    (["train", "--chunk-size", "0"], "chunk"),
    (["train", "--epochs", "0"], "epochs"),
    (["train", "--fraction", "1.5", "--kind", "subset"], "fraction"),
    (["train", "--seed", "-1"], "seed"),
    (["train", "--device", "tpu"], "device"),
    (["train", "--arch", "vgg"], "arch"),
    (["train", "--dataset", "mnist"], "dataset"),
    (["train", "--dataset", "cifar10", "--data-root", "/nonexistent/x"], "cifar"),
    (["train", "--executor", "ray", "--gpus-per-task", "-1"], "gpus"),
    (["train", "--address", "h:1"], "address"),
    (["oracles", "--forget-set", "99"], "forget set"),
    (["oracles", "--forget-set", "abc"], "forget-set"),
    (["evaluate", "--forget-set", "99"], "forget set"),
    (["unlearn", "--forget-set", "99", "--method", "nope"], "nope"),
    (["unlearn", "--forget-set", "99", "--method", "gradient_descent", "--budget", "x"], "budget"),
    (["unlearn", "--forget-set", "99", "--method", "gradient_descent", "--param", "lr"], "param"),
    (["forget-set", "show", "99"], "99"),
    (["forget-set", "delete", "99"], "99"),
    (["forget-set", "create", "--kind", "random", "--k", "0"], "k"),
    (["forget-set", "create", "--kind", "manual", "--indices", "1,x"], "x"),
    (["forget-set", "create", "--kind", "upload", "--file", "/nonexistent.csv"], "nonexistent"),
    (["forget-set", "create", "--kind", "class", "--cls", "12"], "class"),
    (["forget-set", "create", "--kind", "preset", "--preset", "nope"], "nope"),
    (["forget-set", "create", "--kind", "knn", "--k", "5", "--anchor", "-3"], "anchor"),
    (["forget-set", "create", "--kind", "knn", "--space", "nope"], "space"),
    (["forget-set", "create", "--kind", "pc", "--component", "-1"], "component"),
    (["forget-set", "create", "--kind", "pc", "--top", "-1"], "top"),
    (["models", "delete", "99"], "99"),
    (["jobs", "cancel", "99"], "99"),
    (["jobs", "resume", "abc"], "abc"),
    (["worker", "--job", "99"], "99"),
    (["audit", "99"], "99"),
    (["datamodels", "fit", "--models", "1"], "models"),
    (["datamodels", "fit", "--holdout", "-1"], "holdout"),
    (["datamodels", "fit", "--target", "nope"], "target"),
    (["datamodels", "delete", "99"], "99"),
    (["import-margins", "/nonexistent.npy", "--kind", "original"], "nonexistent"),
    (["import-margins", "/nonexistent.npy", "--kind", "oracle", "--rows", "5:1"], "rows"),
    (
        [
            "import-margins",
            "/nonexistent.npy",
            "--kind",
            "unlearned",
            "--forget-set",
            "1",
            "--label",
            "x",
            "--cost",
            "-1",
        ],
        "cost",
    ),
    (["import-forget-set", "/nonexistent.npy"], "nonexistent"),
    (["preset", "cifar10", "--models", "0", "--estimate-only"], "models"),
    (["preset", "cifar10", "--sizes", "10,x", "--estimate-only"], "sizes"),
    (["preset", "cifar10", "--batch-size", "0", "--estimate-only"], "batch"),
    (["preset", "cifar10", "--probe-steps", "0", "--estimate-only"], "probe"),
    (["preset", "cifar10", "--epochs", "0", "--estimate-only"], "epochs"),
    (["preset", "nope"], "nope"),
    (["demo", "--models", "1"], "models"),
    (["demo", "--epochs", "0"], "epochs"),
    (["linear", "--steps", "0"], "steps"),
    (["models", "--json=1"], "json"),
    (["jobs", "stop"], "action"),
    (["train", "--kind", "nope"], "kind"),
    (["evaluate", "--forget-set", "1", "--method", "nope"], "nope"),
    (["import-margins", "/nonexistent.npy", "--kind", "nope"], "kind"),
    (["import-margins", "/nonexistent.npy", "--kind", "oracle", "--role", "nope"], "role"),
    (["forget-set", "create", "--kind", "nope"], "kind"),
    (["forget-set", "create", "--kind", "pc", "--bottom", "-1"], "bottom"),
    (["forget-set", "create", "--kind", "class", "--cls", "1", "--fraction", "2"], "fraction"),
    (["forget-set", "create", "--kind", "random", "--k", "5", "--name", "a\x07b"], "name"),
    (["datamodels", "fit", "--subset-set", "99"], "original"),  # no originals yet: said first
    (["datamodels", "fit", "--originals", "99"], "99"),
]


def _stored(db) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = {
            r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()
        }
        return sum(
            con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in ("model_sets", "forget_sets", "evaluations", "jobs", "linear_runs")
            if t in names
        )
    finally:
        con.close()


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_every_flag_refuses_bad_values(args, needle, db_path, capsys, monkeypatch):
    from core.store.db import Store

    Store(db_path).create()  # an empty lab: ids name nothing in it
    monkeypatch.setenv("LAB_DATA_ROOT", str(db_path.parent / "datasets"))  # --data-root sets it
    try:
        rc = main([*args, "--db", str(db_path)])
    except SystemExit as exit_:  # argparse: a value of the wrong type or choice
        rc = exit_.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert needle.lower() in err.lower(), err
    assert _stored(db_path) == 0


@pytest.mark.parametrize("kind", ["directory", "text", "empty", "sqlite"])
def test_bad_database_paths(kind, tmp_path, capsys):
    path = tmp_path / "lab.duckdb"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "sqlite":
        path.write_bytes(b"SQLite format 3\x00" + bytes(200))
    before = path.read_bytes() if path.is_file() else None
    for args in (["models"], ["forget-set", "create", "--kind", "random", "--k", "5"]):
        rc = main([*args, "--db", str(path)])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.startswith("error:") and "Traceback" not in err and "internal" not in err
        assert str(path.name) in err or str(path.parent) in err, err
        assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.parametrize(
    "var,value",
    [
        ("LAB_DEVICE", "tpu"),
        ("LAB_THREADS", "many"),
        ("LAB_DB_TIMEOUT", "soon"),
        ("LAB_COMMIT_PATIENCE", "-3"),
        ("LAB_DATA_ROOT", "/nonexistent/cifar"),
    ],
)
def test_bad_environment_variables(var, value, db_path, capsys, monkeypatch):
    monkeypatch.setenv(var, value)
    args = ["train", "--models", "2", "--epochs", "1"]
    if var == "LAB_DATA_ROOT":
        args += ["--dataset", "cifar10"]
    rc = main([*args, "--db", str(db_path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert var in err or value in err, err
    assert not db_path.exists() or _stored(db_path) == 0  # checked before the first row


def test_a_mistyped_database_folder(tmp_path, capsys):
    """A read names the missing file and creates nothing; the first write creates it."""
    path = tmp_path / "no" / "such" / "lab.duckdb"
    assert main(["models", "--db", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(path) in err and not path.parent.exists()

"""Security, read from the source: an AST walk over ``core/ dashboard/ bench/ scripts/``.

It fails on
- ``torch.load`` (or ``torch.serialization.load``) without ``weights_only=True``;
  ``torch.jit.load`` (TorchScript runs code);
- ``np.load`` with ``allow_pickle`` anything but ``False`` (or ``**kwargs`` that could set it);
- any unpickling: ``pickle``/``_pickle``/``cloudpickle``/``dill``/``joblib`` loads and
  ``Unpickler``, ``marshal`` loads, ``shelve.open``, ``pandas.read_pickle``, ``yaml.load`` and
  ``yaml.unsafe_load``;
- ``eval``, ``exec``, ``compile`` and ``__import__`` (builtins), and ``importlib.import_module``
  of anything but a literal;
- SQL (the first argument of ``execute``, ``executemany``, ``sql``, ``query_df``, ``read_sql``;
  pandas' ``query``/``eval`` too) built from anything but constants.

What counts as constant SQL: a string literal; an f-string, ``+``, ``*``, ``%``, a conditional
or ``"sep".join`` of constant parts; a module-level name bound to one; a local name whose every
assignment in its function is constant; a loop variable over a literal tuple of constants.
This last case is the **allow-list of identifiers**: a table or column name is interpolated only
as the loop variable (or tuple element) of a loop over a literal tuple in the code itself, e.g.
``for table in ("points", "summaries", "models"):`` — never from a parameter, a row or a user.
Values always go in as ``?`` parameters. The few names that cannot be resolved this way are in
``TRUSTED`` below, each with the reason it is safe (and, where it can be, a check of that reason).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

DIRS = ("core", "dashboard", "bench", "scripts")
SQL_CALLS = {"execute", "executemany", "sql", "query_df", "read_sql", "read_sql_query", "query",
             "eval"}  # fmt: skip
UNPICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib"}
BANNED = {f"{m}.{f}" for m in UNPICKLE_MODULES for f in ("load", "loads", "Unpickler")} | {
    "marshal.load", "marshal.loads", "shelve.open", "pandas.read_pickle", "yaml.load",
    "yaml.unsafe_load", "yaml.full_load", "torch.jit.load", "numpy.lib.format.read_array",
}  # fmt: skip
BUILTINS = {"eval", "exec", "compile", "__import__"}

# (file, function, name) -> why this name, which the walk cannot resolve to constants, is safe
TRUSTED = {
    ("core/store/db.py", "query_df", "sql"): "Store.query_df's own parameter: the SQL every caller "
    "passes is checked at the call",
    (
        "core/jobs/kinds.py",
        "_row_id",
        "table",
    ): "_row_id(table, what) is only called with a literal "
    "table name (test_row_id_tables_are_literals)",
    ("core/store/check.py", "scan_all", "q"): "the database's own table names, read from "
    "duckdb_tables() and quoted with '\"' doubled; no user text",
}


def sources() -> list[Path]:
    return sorted(p for d in DIRS for p in (ROOT / d).rglob("*.py"))


def dotted(node: ast.AST, aliases: dict[str, str]) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


class Scope:
    """Assignments of one function (or the module): name -> the expressions bound to it."""

    def __init__(self, node: ast.AST, parent: Scope | None) -> None:
        self.node, self.parent, self.binds = node, parent, {}
        self.params = set()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = node.args
            self.params = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
            self.params |= {x.arg for x in (a.vararg, a.kwarg) if x}

    def bind(self, target: ast.AST, how: tuple) -> None:
        if isinstance(target, ast.Name):
            self.binds.setdefault(target.id, []).append(how)
        elif isinstance(target, ast.Tuple | ast.List):
            for i, t in enumerate(target.elts):
                self.bind(t, (*how, i))  # element i of what ``how`` yields


def collect(node: ast.AST, scope: Scope, scopes: dict) -> None:
    """Fill every scope's bindings; ``scopes`` maps each call node to its innermost scope."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            collect(child, Scope(child, scope), scopes)
            continue
        if isinstance(child, ast.Assign):
            for t in child.targets:
                scope.bind(t, ("value", child.value))
        elif isinstance(child, ast.AnnAssign | ast.AugAssign) and child.value is not None:
            scope.bind(child.target, ("value", child.value))
        elif isinstance(child, ast.For | ast.comprehension):
            scope.bind(child.target, ("item", child.iter))
        elif isinstance(child, ast.Call):
            scopes[child] = scope
        collect(child, scope, scopes)


class Checker:
    def __init__(self, rel: str) -> None:
        self.rel = rel

    def function(self, scope: Scope) -> str:
        return getattr(scope.node, "name", "<module>")

    def resolve(self, name: str, scope: Scope | None, seen: set) -> bool:
        while scope is not None:
            if (self.rel, self.function(scope), name) in TRUSTED:
                return True
            if name in scope.binds:
                key = (id(scope), name)
                if key in seen:
                    return True  # a cycle (x += …): the other bindings decide
                seen.add(key)
                return all(self.bound(how, scope, seen) for how in scope.binds[name])
            if name in scope.params:
                return False  # a parameter: whatever a caller passes
            scope = scope.parent
        return False  # a global we cannot see, or a builtin

    def bound(self, how: tuple, scope: Scope, seen: set) -> bool:
        kind, expr, *path = how
        if kind == "item":  # a loop variable: every item of the iterable, at ``path``
            items = self.literal_items(expr, scope)
            return items is not None and all(
                self.safe(self.pick(i, path), scope, seen) for i in items
            )
        return self.safe(self.pick(expr, path), scope, seen)

    def literal_items(self, expr: ast.AST, scope: Scope | None) -> list | None:
        """The items of a literal tuple/list/set, or of a name bound once to one."""
        while isinstance(expr, ast.Name) and scope is not None:
            if expr.id in scope.binds:
                hows = scope.binds[expr.id]
                if len(hows) != 1 or hows[0][0] != "value" or len(hows[0]) != 2:
                    return None
                expr = hows[0][1]
                break
            scope = scope.parent
        return expr.elts if isinstance(expr, ast.Tuple | ast.List | ast.Set) else None

    def pick(self, expr: ast.AST, path: list) -> ast.AST | None:
        for i in path:
            if isinstance(expr, ast.IfExp):  # (a, b) if c else (d, e): both branches
                return ast.IfExp(expr.test, self.pick(expr.body, [i]), self.pick(expr.orelse, [i]))
            if not isinstance(expr, ast.Tuple | ast.List) or i >= len(expr.elts):
                return None
            expr = expr.elts[i]
        return expr

    def safe(self, e: ast.AST | None, scope: Scope, seen: set | None = None) -> bool:
        seen = set() if seen is None else seen
        if isinstance(e, ast.Constant):
            return isinstance(e.value, str | int | float | type(None))
        if isinstance(e, ast.JoinedStr):
            return all(self.safe(v.value, scope, seen) for v in e.values
                       if isinstance(v, ast.FormattedValue))  # fmt: skip
        if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Add | ast.Mult | ast.Mod):
            return self.safe(e.left, scope, seen) and self.safe(e.right, scope, seen)
        if isinstance(e, ast.IfExp):
            return self.safe(e.body, scope, seen) and self.safe(e.orelse, scope, seen)
        if isinstance(e, ast.Tuple | ast.List):
            return all(self.safe(x, scope, seen) for x in e.elts)
        if (
            isinstance(e, ast.Call)
            and isinstance(e.func, ast.Attribute)
            and not e.keywords
            and e.func.attr in ("join", "format")
            and isinstance(e.func.value, ast.Constant)
        ):
            return all(self.safe(a, scope, seen) for a in e.args)
        if isinstance(e, ast.Name):
            return self.resolve(e.id, scope, seen)
        return False


def violations(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[(a.asname or a.name).split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if f"{node.module}.{a.name}" in BANNED:
                    out.append(f"{rel}:{node.lineno}: imports {node.module}.{a.name}")
    scopes: dict = {}
    collect(tree, Scope(tree, None), scopes)
    check = Checker(rel)
    for call, scope in scopes.items():
        name = dotted(call.func, aliases)
        kw = {k.arg: k.value for k in call.keywords}
        where = f"{rel}:{call.lineno}: {ast.unparse(call)[:100]}"
        if name in BANNED:
            out.append(f"{where} — unpickles (or runs) stored bytes")
        elif name in ("torch.load", "torch.serialization.load"):
            w = kw.get("weights_only")
            if not (isinstance(w, ast.Constant) and w.value is True):
                out.append(f"{where} — torch.load without weights_only=True")
        elif name in ("numpy.load", "numpy.lib.npyio.load"):
            a = kw.get("allow_pickle", ast.Constant(False))
            if None in kw or not (isinstance(a, ast.Constant) and a.value is False):
                out.append(f"{where} — np.load may unpickle (allow_pickle)")
        elif isinstance(call.func, ast.Name) and call.func.id in BUILTINS:
            out.append(f"{where} — {call.func.id} of code")
        elif name == "importlib.import_module" and not check.safe(call.args[0], scope):
            out.append(f"{where} — imports a module named at run time")
        elif (
            isinstance(call.func, ast.Attribute)
            and call.func.attr in SQL_CALLS
            and call.args
            and not check.safe(call.args[0], scope)
        ):
            out.append(f"{where} — SQL built from non-constant parts")
    return out


def test_nothing_unpickles_evals_or_builds_sql_from_data() -> None:
    found = [v for p in sources() for v in violations(p)]
    assert not found, "\n".join(found)


def test_the_walk_catches_each_pattern(tmp_path, monkeypatch) -> None:
    """Each forbidden pattern, planted in a file, is reported (the walk is not blind)."""
    bad = {
        "a": "import torch\ntorch.load(p)\ntorch.load(p, weights_only=False)\n",
        "b": "import numpy as np\nnp.load(p, allow_pickle=True)\nnp.load(p, **kw)\n",
        "c": "import pickle, joblib\npickle.loads(b)\njoblib.load(p)\nfrom pickle import load\n",
        "d": "import pandas as pd\npd.read_pickle(p)\neval(s)\nexec(s)\n",
        "e": "def f(con, name):\n    con.execute(f'SELECT * FROM t WHERE n = {name}')\n",
        "f": "def f(con, rows):\n    for t in rows:\n        con.execute(f'DELETE FROM {t}')\n",
        "g": "def f(con, v):\n    q = 'SELECT ' + v\n    con.sql(q)\n",
        "h": "def f(store, v):\n    store.query_df('SELECT %s' % v)\n",
    }
    expect = {"a": 2, "b": 2, "c": 3, "d": 3, "e": 1, "f": 1, "g": 1, "h": 1}
    monkeypatch.setattr("tests.test_security_static.ROOT", tmp_path)
    for key, text in bad.items():
        (tmp_path / f"{key}.py").write_text(text)
        assert len(violations(tmp_path / f"{key}.py")) == expect[key], (
            key,
            violations(tmp_path / f"{key}.py"),
        )
    ok = (
        "import numpy as np, torch\nT = ('a', 'b')\nnp.load(p)\ntorch.load(p, weights_only=True)\n"
        "def f(con, x, k):\n    w, a = ('WHERE x = ?', [x]) if x else ('', [])\n"
        "    for t in T:\n        con.execute(f'DELETE FROM {t} {w}', a)\n"
        "    s = 'SELECT 1'\n    for col, v in (('c', x), ('d', k)):\n        s += f' AND {col} = ?'\n"
        "    con.execute(s + ' LIMIT 1', [x])\n"
    )
    (tmp_path / "ok.py").write_text(ok)
    assert violations(tmp_path / "ok.py") == []


def test_row_id_tables_are_literals() -> None:
    """The trusted ``table`` of ``core/jobs/kinds.py``: every ``_row_id`` call names a literal."""
    tree = ast.parse((ROOT / "core" / "jobs" / "kinds.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "_row_id"
    ]
    assert calls and all(isinstance(c.args[0], ast.Constant) for c in calls)


# Calls that reach the file system, and the only ones the dashboard makes, with why each is safe.
# A page never takes a path or file name from its user: uploads are read into memory
# (``UploadedFile.getvalue()``), downloads are built in memory under fixed names, query
# parameters are ids; the store confines its array files to its folder (``Store.file_path``).
FS_CALLS = {"open", "Path", "PurePath", "read_text", "read_bytes", "write_text", "write_bytes",
            "unlink", "rmtree", "mkdir", "rename", "symlink_to", "Store", "load_dataset", "save",
            "to_csv", "to_parquet", "load", "remove", "makedirs", "listdir", "copy", "copytree",
            "move", "iterdir", "glob", "rglob"}  # fmt: skip
DASHBOARD_FS = {
    ("dashboard/components.py", "DOCS.read_text(encoding='utf-8')"): "docs/concepts.md, a path "
    "fixed relative to the package (DOCS)",
    (
        "dashboard/components.py",
        "Image.fromarray(upscale(img, size)).save(buf, format='PNG')",
    ): "into an in-memory buffer",
    ("dashboard/downloads.py", "out.to_parquet(buf, index=False)"): "into an in-memory buffer",
    ("dashboard/downloads.py", "to_parquet(df)"): "downloads.to_parquet: bytes in memory",
    ("dashboard/data_access.py", "load_dataset(name, 'cpu')"): "a dataset name from a fixed list "
    "(load_dataset refuses others); its folder is LAB_DATA_ROOT, set by whoever runs the server",
    ("dashboard/warmup.py", "load_dataset('digits', 'cpu')"): "the embedded digits dataset",
    ("dashboard/data_access.py", "Store(path)"): "the database that whoever started the server "
    "chose (--db or LAB_DB), never a page's input",
}


def test_dashboard_touches_the_file_system_only_in_known_places() -> None:
    found = []
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(n, ast.Call):
                continue
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            text = ast.unparse(n)
            if name not in FS_CALLS or (name in ("to_csv", "copy") and not n.args):
                continue  # to_csv() returns text; DataFrame.copy() copies memory
            if text.startswith("Path(__file__)") or (rel, text) in DASHBOARD_FS:
                continue
            found.append(f"{rel}:{n.lineno}: {text[:100]}")
    assert not found, "new file-system access from the dashboard:\n" + "\n".join(found)

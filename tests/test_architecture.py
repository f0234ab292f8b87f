"""The package's shape, read from its source with ``ast``: no module reads another
module's private names, imports form no circle (function-level imports count), the
estimators' methods stay thin, and a small fit on the host never loads JAX."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"
ROOT = PACKAGE.parent
# NamedTuple's public API starts with an underscore.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import statement
    in ``module``, at any depth (function-level imports count)."""
    tree = ast.parse(MODULES[module].read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for a in node.names:
                sub = f"{source}.{a.name}"
                # `from package import submodule` imports that module
                out.append((sub, None, node.lineno) if sub in MODULES
                           else (source, a.name, node.lineno))
    return out


def _internal_graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in _imports(m):
            if target in MODULES and target != m:
                graph[m].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module
    (Tarjan), as a closed path."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(_path_within(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path_within(graph, comp: set[str]) -> list[str]:
    """A closed walk through ``comp`` from its first module (for the message)."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w == start]
        fresh = [w for w in nxt if w not in seen]
        if back and (len(path) > 1 or not fresh):
            return path + [start]
        if not fresh:
            return path + [nxt[0]]
        path.append(fresh[0])
        seen.add(fresh[0])


def _private_reads(module: str) -> list[str]:
    """Reads of another module's private names in ``module``:

    * ``from bayesgmm.x import _y`` (a private name, not a private module such as
      ``bayesgmm._typing``);
    * ``name._y`` where ``name`` was bound by an import (a module or an imported object,
      e.g. ``em._fit_jit``, ``np.random.mtrand._rand``);
    * ``var._y`` where ``var`` was assigned the result of calling an imported name in the
      same function (``gm = GaussianMixture(...); gm._set_fitted(...)``).
    ``self``/``cls`` and this module's own objects are not flagged."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for a in node.names:
                imported.add(a.asname or a.name)
                if (source.split(".")[0] == "bayesgmm" and _private(a.name)
                        and f"{source}.{a.name}" not in MODULES):
                    found.append(f"line {node.lineno}: from {source} import {a.name}")
        elif isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)

    def root(expr):
        while isinstance(expr, ast.Attribute):
            expr = expr.value
        return expr.id if isinstance(expr, ast.Name) else None

    scopes = [tree] + [n for n in ast.walk(tree)
                       if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for scope in scopes:
        foreign = set()  # locals holding an object made by an imported callable
        for node in ast.walk(scope):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and root(node.value.func) in imported):
                foreign.update(t.id for t in node.targets if isinstance(t, ast.Name))
        for node in ast.walk(scope):
            if (isinstance(node, ast.Attribute) and _private(node.attr)
                    and node.attr not in NAMEDTUPLE_API):
                r = root(node.value)
                if r in imported or (isinstance(node.value, ast.Name) and r in foreign):
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return sorted(set(found))


# Outside libraries' internals, each read in the one module that owns that library's
# moving API (STYLE.md, section 8): nothing of bayesgmm's own.
OUTSIDE_INTERNALS = {
    # NumPyro's NUTS kernel keeps its (vmapped) transition function there after init
    "bayesgmm.bayes.inference.nuts": ["kernel._sample_fn"],
}


@pytest.mark.parametrize("module", list(MODULES))
def test_no_module_reads_another_modules_private_names(module):
    allowed = OUTSIDE_INTERNALS.get(module, [])
    reads = [r for r in _private_reads(module) if not any(a in r for a in allowed)]
    assert reads == []


def test_the_private_name_check_can_fail(tmp_path, monkeypatch):
    """The checker itself flags each kind of private read (and not NamedTuple's
    ``_replace`` or the module's own objects)."""
    source = textwrap.dedent("""
        import numpy as np
        from bayesgmm.estimators import GaussianMixture, _BaseEstimator
        from bayesgmm.engines import jax as em

        class Own:
            def _mine(self): ...

        def f(info, own: Own):
            gm = GaussianMixture(2)
            gm._set_fitted(1, 2, 3)
            own._mine()
            info._replace(n_iter=1)
            return em._fit_jit, np.random.mtrand._rand
    """)
    fake = tmp_path / "fake.py"
    fake.write_text(source)
    monkeypatch.setitem(MODULES, "bayesgmm.fake", fake)
    reads = _private_reads("bayesgmm.fake")
    assert len(reads) == 4, reads
    assert any("_BaseEstimator" in r for r in reads) and any("gm._set_fitted" in r for r in reads)
    assert any("em._fit_jit" in r for r in reads) and any("mtrand._rand" in r for r in reads)


# every name covariance_type takes: scikit-learn's four, mclust's 14 and 1-D E/V
COVARIANCE_NAMES = {"full", "tied", "diag", "spherical", "E", "V", "EII", "VII", "EEI",
                    "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV",
                    "VVV"}


def _type_branches(path: Path) -> list[str]:
    """Comparisons with a covariance type's name (``kind == "full"``, ``ct in ("diag",
    "spherical")``) in one file: a branch on the type, which belongs in the per-type
    table of covariance.py."""
    def names(node) -> set:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value} & COVARIANCE_NAMES
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(names(e) for e in node.elts)) if node.elts else set()
        return set()

    return [f"{path.name}:{node.lineno}: {ast.unparse(node)}"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Compare)
            and any(names(side) for side in [node.left, *node.comparators])]


def test_only_the_covariance_table_branches_on_the_covariance_type():
    """No module but covariance.py compares a covariance type with a name: what differs
    between the types is in its one table (README's Layout)."""
    from bayesgmm.selection import all_covariance_types

    assert set(all_covariance_types()) < COVARIANCE_NAMES
    found = [b for module, path in MODULES.items() if module != "bayesgmm.covariance"
             for b in _type_branches(path)]
    assert found == []


def test_the_type_branch_check_can_fail(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text('def f(kind, ct):\n    if kind == "full":\n        return 1\n'
                    '    return ct in ("VVI", "other") or kind != "best"\n')
    found = _type_branches(fake)
    assert len(found) == 2 and "fake.py:2" in found[0] and "VVI" in found[1], found


def _in_bayes(cycle):
    return all(m.startswith("bayesgmm.bayes") for m in cycle)


def test_no_import_circle():
    assert [c for c in _cycles(_internal_graph()) if not _in_bayes(c)] == []


def test_no_import_circle_in_the_bayesian_package():
    assert [c for c in _cycles(_internal_graph()) if _in_bayes(c)] == []


def test_the_circle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_selection_imports_the_estimator_not_the_reverse():
    """The circle this layout removed: the estimator scores through bayesgmm.fitting;
    the sweep builds estimators."""
    graph = _internal_graph()
    assert "bayesgmm.estimators" in graph["bayesgmm.selection"]
    assert "bayesgmm.selection" not in graph["bayesgmm.estimators"]


# ---- thin estimators ------------------------------------------------------------------

MAX_METHOD_LINES = 15


def _method_lengths(path: Path, class_name: str) -> dict[str, int]:
    """Lines of code of each method of ``class_name``: its body without the docstring,
    blank lines and comment lines."""
    source = path.read_text()
    lines = source.splitlines()
    cls = next(n for n in ast.walk(ast.parse(source))
               if isinstance(n, ast.ClassDef) and n.name == class_name)
    out = {}
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = fn.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:]
        if not body:
            out[fn.name] = 0
            continue
        code = lines[body[0].lineno - 1:body[-1].end_lineno]
        out[fn.name] = sum(1 for ln in code if ln.strip() and not ln.strip().startswith("#"))
    return out


def test_robust_mixture_methods_are_thin():
    """Every method of RobustMixture but __init__, private ones too."""
    lengths = _method_lengths(PACKAGE / "estimators.py", "RobustMixture")
    assert {"fit", "predict", "predict_proba"} <= set(lengths)
    long = {name: n for name, n in lengths.items()
            if name != "__init__" and n > MAX_METHOD_LINES}
    assert long == {}


def test_gaussian_mixture_methods_are_thin():
    """Every method of GaussianMixture but __init__, private ones too."""
    lengths = _method_lengths(PACKAGE / "estimators.py", "GaussianMixture")
    assert {"fit", "partial_fit", "from_params", "predict"} <= set(lengths)
    long = {name: n for name, n in lengths.items()
            if name != "__init__" and n > MAX_METHOD_LINES}
    assert long == {}


def test_bayesian_gaussian_mixture_public_methods_are_thin():
    lengths = _method_lengths(PACKAGE / "bayes" / "estimator.py", "BayesianGaussianMixture")
    assert "fit" in lengths
    long = {name: n for name, n in lengths.items()
            if not name.startswith("_") and n > MAX_METHOD_LINES}
    assert long == {}


def test_method_length_counts_code_only(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(textwrap.dedent('''
        class C:
            def f(self):
                """Doc
                string."""
                # a comment

                x = 1
                return (x,
                        2)
    '''))
    assert _method_lengths(path, "C") == {"f": 3}


# ---- no JAX on the host path ----------------------------------------------------------


HOST_MODULES = ["bayesgmm.estimators", "bayesgmm.fitting", "bayesgmm.selection", "bayesgmm.io",
                "bayesgmm.validation", "bayesgmm.initialize", "bayesgmm.robust"]
# Modules that are JAX through and through; the host modules import them where they run.
COMPILED = ("jax", "bayesgmm.engines.jax", "bayesgmm.density", "bayesgmm.suffstats",
            "bayesgmm.compilation")


@pytest.mark.parametrize("module", HOST_MODULES)
def test_host_modules_import_jax_only_where_it_runs(module):
    """This half of the no-JAX host path: these modules import JAX and the compiled
    modules inside functions, never at module level (the engine-seam branch does the
    same for params, covariance, choose and engines.numpy)."""
    tree = ast.parse(MODULES[module].read_text())
    top = []
    for node in tree.body:  # module level (an `if TYPE_CHECKING:` block never runs)
        if isinstance(node, ast.Import):
            top += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            top += [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
                    for a in node.names]
    assert [m for m in top if m.split(".")[0] == "jax" or m in COMPILED] == []


def test_host_fit_imports_no_jax():
    """A 300 x 2 fit, predict_proba, bic, sample and a sweep over K=1..5, all on the host:
    JAX is never imported, nor scikit-learn (bayesgmm's ConvergenceWarning and
    NotFittedError subclass its classes, built only when first used), SciPy or
    matplotlib."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import bayesgmm
        from bayesgmm import GaussianMixture
        from bayesgmm.selection import sweep

        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(6, 1, (150, 2))])
        gm = GaussianMixture(2, random_state=0).fit(X)
        assert gm.engine_ == "numpy"
        gm.predict_proba(X), gm.bic(X), gm.sample(7), gm.sample(8)
        table = sweep(X, range(1, 6), random_state=0)
        assert table.best["n_components"] == 2
        loaded = sorted(m for m in sys.modules if m == "jax" or m.startswith("jax."))
        assert "jax" not in sys.modules, loaded[:10]
        heavy = [m for m in ("sklearn", "scipy", "matplotlib") if m in sys.modules]
        assert heavy == [], heavy
        import sklearn.exceptions
        assert issubclass(bayesgmm.ConvergenceWarning, sklearn.exceptions.ConvergenceWarning)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]

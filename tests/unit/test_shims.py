"""The old flat modules (``akeru.engine``, ``akeru.conf``, ``akeru.views``, …) are shims kept for one
release: each still gives every name it re-exported, and nothing of ours imports them (akeru/ is held to
that by .importlinter's ``no-shims`` contract; the tests, benchmarks, devtools, scripts and the host
project by this module)."""

import ast
import configparser
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AKERU = ROOT / "akeru"
OURS = ("tests", "bench", "devtools", "scripts", "worker")
PROMISE = "re-exported here for one release"


def _docstring(path):
    return " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())


SHIMS = sorted(f"akeru.{path.stem}" for path in AKERU.glob("*.py") if PROMISE in _docstring(path))


def _reexports(shim):
    """``{name in the shim: (module it comes from, name there)}`` for every import in the shim."""
    path = AKERU / f"{shim.rpartition('.')[2]}.py"
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            source = importlib.util.resolve_name("." * node.level + (node.module or ""), "akeru") if node.level \
                else node.module
            for alias in node.names:
                found[alias.asname or alias.name] = (source, alias.name)
    return found


def test_the_shims_are_the_ones_the_contract_forbids():
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    forbidden = config["importlinter:contract:no-shims"]["forbidden_modules"].split()
    assert SHIMS and sorted(forbidden) == SHIMS


@pytest.mark.parametrize("shim", SHIMS)
def test_every_name_a_shim_reexported_still_resolves(shim):
    module = importlib.import_module(shim)
    names = _reexports(shim)
    assert names, f"{shim} re-exports nothing"
    assert set(getattr(module, "__all__", names)) <= set(names), f"{shim}.__all__ names what it does not import"
    for name, (source, original) in names.items():
        real = importlib.import_module(source)
        expected = getattr(real, original, None)
        if expected is None:  # `from akeru.domain import policy`: a submodule
            expected = importlib.import_module(f"{source}.{original}")
        assert getattr(module, name) is expected, f"{shim}.{name} is not {source}.{original}"


def _module_of(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _shim_uses(path):
    """``(line, shim)`` for every import of a shim in ``path`` (relative imports resolved), and every
    string naming one by its dotted path (a setting such as ``CSRF_FAILURE_VIEW``)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    shims = set(SHIMS)

    def shim_in(name):
        return next((s for s in shims if name == s or name.startswith(f"{s}.")), None)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            named = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("akeru."):
            named = [node.value]
        else:
            continue
        for shim in sorted({shim_in(name) for name in named} - {None}):
            yield node.lineno, shim


def test_nothing_of_ours_imports_a_shim():
    found = [
        f"{path.relative_to(ROOT)}:{line} uses {shim}"
        for top in OURS
        for path in sorted((ROOT / top).rglob("*.py"))
        for line, shim in _shim_uses(path)
    ]
    assert not found, "import from the module that defines the name, not the one-release shim:\n" + "\n".join(found)

"""Design rules that keep the code base honest: dependency directions, documentation that stays
inside the repository."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AKERU = REPO / "akeru"


def akeru_imports(path):
    """Every akeru module ``path`` (a module, or a package: all its modules) imports, at any depth
    (function-level imports included), as the name of the top-level module under ``akeru``."""
    if path.is_dir():
        return set().union(*(akeru_imports(module) for module in sorted(path.glob("*.py"))))
    package = list(path.relative_to(REPO).parts[:-1])  # the package a relative import starts from
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from .x import y / from .. import x
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                names = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
                found.update(names)
            elif (node.module or "").startswith("akeru"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("akeru"))
    return {name.split(".")[1] if name.count(".") else name for name in found}


def test_models_import_nothing_above_them():
    assert akeru_imports(AKERU / "models") & {"services", "tasks", "engine", "reconcile", "admin", "views"} == set()


def test_services_publish_tasks_by_name_and_import_no_task_or_engine_code():
    for path in sorted((AKERU / "services").glob("*.py")):
        assert akeru_imports(path) & {"tasks", "engine", "reconcile", "keys"} == set(), path.name


def test_the_outbox_and_the_audit_sit_below_reconcile_and_services():
    above = {"tasks", "engine", "reconcile", "keys", "services", "admin", "views", "web"}
    for path in sorted([*(AKERU / "outbox").glob("*.py"), *(AKERU / "audit").glob("*.py")]):
        assert akeru_imports(path) & above == set(), path.name


def test_only_the_audit_writes_audit_events():
    creates = re.compile(r"AuditEvent\.objects\.(create|bulk_create|get_or_create|update_or_create)\(|(?<!class )\bAuditEvent\(")
    writers = sorted(str(path.relative_to(AKERU)) for path in AKERU.rglob("*.py")
                     if "migrations" not in path.parts and creates.search(path.read_text()))
    assert writers == ["audit/__init__.py"]


def test_the_reconciler_never_enqueues_through_tasks_or_services():
    for module in sorted((AKERU / "reconcile").glob("*.py")):
        assert akeru_imports(module) & {"tasks", "services"} == set(), module.name


def test_the_orm_delete_is_not_redefined():
    for module in sorted((AKERU / "models").glob("*.py")):
        tree = ast.parse(module.read_text())
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            assert "delete" not in {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}, cls.name


def test_execute_takes_no_unused_callback():
    tree = ast.parse((AKERU / "aws" / "execute.py").read_text())
    execute = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "execute")
    assert [a.arg for a in execute.args.args] == ["iam", "actions"]


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_and_docs_link_only_inside_the_repository():
    problems = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text()):
            path = target.split("#", 1)[0]
            if re.match(r"[a-z]+:", target):
                problems.append(f"{page.name}: {target} (outside the repository)")
            elif path and not (page.parent / path).resolve().is_relative_to(REPO):
                problems.append(f"{page.name}: {target} (outside the repository)")
            elif path and not (page.parent / path).exists():
                problems.append(f"{page.name}: {target} (no such file)")
    assert problems == []


def test_the_architecture_is_documented_in_the_repository():
    readme = (REPO / "README.md").read_text()
    assert "(docs/architecture.md)" in readme
    assert "## No lost intent" in (REPO / "docs" / "architecture.md").read_text()

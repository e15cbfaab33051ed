"""The README and docs/ name only what exists: every repository path they mention, in backticks or
as a link, is a file or folder of this repository."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP = ("akeru/", "worker/", "tests/", "bench/", "scripts/", "devtools/", "docs/", ".ci/")
FILES = {"Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml", "manage.py", "README.md"}
# Named by the docs ahead of the devtools/ move (another branch of the same change); checked once
# devtools/ exists.


def named_paths(page):
    """(path, folder it is relative to) for every repository path ``page`` names: in backticks
    relative to the repository root, as a link relative to the page."""
    text = page.read_text()
    for code in re.findall(r"`([^`\n]+)`", text):
        for word in code.split():
            word = word.strip("(),;:").split("#", 1)[0]
            if word.startswith(TOP) or word in FILES:
                yield word, REPO
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            yield target.split("#", 1)[0], page.parent


def missing_paths(pages):
    missing = []
    for page in pages:
        for path, base in named_paths(page):
            if any(c in path for c in "*{}<>…") or path.startswith(".demo/"):
                continue  # a pattern or a placeholder, or what `make demo` writes
            if not (base / path).exists():
                missing.append(f"{page.relative_to(REPO)}: {path}")
    return missing


def test_every_path_the_readme_and_docs_name_exists():
    assert missing_paths(PAGES) == []


def test_a_path_that_does_not_exist_is_found():
    page = REPO / "docs" / "fake.md"  # never written: a stand-in page with a text of its own
    fake = type("Page", (), {"read_text": lambda self: "`scripts/signin.py` and [x](nowhere.md)",
                             "parent": page.parent, "relative_to": lambda self, other: "fake.md"})()
    assert missing_paths([fake]) == ["fake.md: scripts/signin.py", "fake.md: nowhere.md"]


def test_no_page_names_the_shared_folder():
    assert [p.name for p in PAGES if "../shared" in p.read_text()] == []

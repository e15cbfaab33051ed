"""``make demo`` on a ``.demo/`` database made before the migrations began at 0.0.2's schema: the
database (demo data only) is moved aside with a message, never a migration traceback."""

import sqlite3

import pytest


@pytest.fixture
def demo(demo_script, monkeypatch, tmp_path):
    monkeypatch.setattr(demo_script, "ROOT", tmp_path)
    return demo_script


def make_db(path, applied, columns):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE django_migrations (app TEXT, name TEXT)")
        db.executemany("INSERT INTO django_migrations VALUES ('akeru', ?)", [(n,) for n in applied])
        db.execute(f"CREATE TABLE akeru_awsrole ({', '.join(columns)})")
    return path


def test_a_database_from_before_the_0_0_2_chain_is_moved_aside(demo, tmp_path, capsys):
    path = make_db(tmp_path / "akeru.sqlite3", ["0001_initial", "0002_access_keys"], ["id", "name", "status"])
    demo.retire_outdated_database(path)
    assert not path.exists()
    assert [p.name for p in tmp_path.glob("akeru.sqlite3.before-upgrade-*")]
    assert "made by an older Akeru" in capsys.readouterr().out


@pytest.mark.parametrize("applied, columns", [
    (["0001_initial", "0002_schema_from_002"], ["id", "name", "status"]),  # today's chain: migrate goes on
    (["0001_initial"], ["id", "name", "kms"]),  # a real 0.0.2 database: migrate upgrades it
])
def test_databases_migrate_can_handle_are_left_alone(demo, tmp_path, applied, columns):
    path = make_db(tmp_path / "akeru.sqlite3", applied, columns)
    demo.retire_outdated_database(path)
    assert path.exists()

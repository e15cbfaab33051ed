"""The settings declarations: one per setting, read from the environment by their type, and the
configuration reference generated from them (docs/configuration.md cannot drift)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from akeru.settings import docs
from akeru.settings.declarations import DEFAULTS, REQUIRED, SETTINGS, SITE, Setting

REPO = Path(__file__).resolve().parents[2]


def test_docs_configuration_is_what_the_declarations_generate():
    written = (REPO / "docs" / "configuration.md").read_text()
    assert written == docs.render(), (
        "docs/configuration.md differs from the declarations: run "
        "`.venv/bin/python -m akeru.settings.docs > docs/configuration.md`")


def test_every_setting_is_declared_once_with_a_line_of_documentation():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert list(DEFAULTS) == names
    for setting in (*SETTINGS, *SITE):
        assert setting.type in (bool, int, str, list), setting.name
        assert setting.doc and "\n" not in setting.doc and "|" not in setting.doc.replace("\\|", ""), setting.name
    assert set(REQUIRED) <= {s.name for s in SETTINGS if s.required}


def test_variables_are_akeru_prefixed_and_every_site_variable_is_read_by_worker_settings():
    for setting in SETTINGS:
        assert setting.env == (setting.name if setting.name.startswith("AKERU_") else f"AKERU_{setting.name}")
    source = (REPO / "worker" / "settings.py").read_text()
    assert [s.env for s in SITE if f'"{s.env}"' not in source] == []


@pytest.mark.parametrize(("type_", "raw", "value"), [
    (bool, "1", True), (bool, " Yes ", True), (bool, "on", True), (bool, "0", False), (bool, "", False),
    (bool, "nope", False), (int, "42", 42), (int, "-5", -5), (int, "0.5", "0.5"), (int, "abc", "abc"),
    (str, " x ", " x "), (list, "a,b", "a,b"),
])
def test_the_type_decides_how_a_variable_is_read(type_, raw, value):
    setting = Setting("AKERU_X", type_, None, "x")
    assert setting.from_env({"AKERU_X": raw}) == (True, value)
    assert setting.from_env({}) == (False, None)


def test_the_declarations_import_nothing_but_the_standard_library():
    code = ("import sys; import akeru.settings.declarations, akeru.settings.docs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'boto3', 'botocore', 'celery'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"})
    assert out.stdout.strip() == "[]"


def test_worker_settings_reads_each_setting_by_its_type():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AKERU_", "PYTEST_"))}
    env.update(DJANGO_SECRET_KEY="x", DJANGO_DEBUG="1", AKERU_DRIFT_MODE="report", AKERU_ASSUMED_ROLE_TIMEOUT="7200",
               AKERU_SET_SOURCE_IDENTITY="off", AKERU_KEY_VERIFY_DELAY="0.5", AKERU_TASK_RESULT_DAYS="0",
               AKERU_LOGIN_FAILURE_LIMIT="3")
    code = ("import worker.settings as s; print(repr((s.AKERU_DRIFT_MODE, s.ASSUMED_ROLE_TIMEOUT, "
            "s.AKERU_SET_SOURCE_IDENTITY, s.AKERU_KEY_VERIFY_DELAY, s.CELERY_RESULT_EXPIRES, s.AXES_FAILURE_LIMIT, "
            "s.AKERU_ADMIN_REQUIRE_MFA, 'AKERU_PARTITION' in vars(s))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(("report", 7200, False, "0.5", None, 3, False, False))

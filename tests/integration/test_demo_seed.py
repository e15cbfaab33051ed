"""``make demo``'s seeding scripts (``scripts/demo.py``) on the test database, without its processes: what a
new user is told to try must hold. alice may ask for data-reader narrowed and for a purpose-built role from
bucket-access's ``${bucket}`` pattern, and the seeded state exported as access as code plans no change."""

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from akeru.models import Account, AWSRole, PolicyTemplate, ScopeMode, TrailSource
from akeru.services import scoping
from tests.helpers.access import person

TEMPLATES = Path(__file__).resolve().parents[2] / "akeru" / "fixtures" / "templates"


@pytest.fixture
def seeded(demo_script, db):
    """The demo's logins, access, scoped requests and trail source, as its start-up seeds them; the catalog
    holding the templates it uploads (its refresh, ``akeru_templates``, judges the pattern invalid)."""
    person("alice", groups=["developers"])  # the demo's users, before SEED_USERS sets their passwords
    demo = demo_script
    for script in (demo.SEED_USERS, demo.SEED_ACCESS, demo.SEED_SCOPED, demo.SEED_LEDGER):
        exec(script, {})  # as `manage.py shell -c` runs it
    PolicyTemplate.objects.create(name=demo.PATTERN_TEMPLATE, body=json.dumps(demo.PATTERN_DOCUMENT), present=True,
                                  valid=False)
    for path in TEMPLATES.glob("template-*.json"):
        PolicyTemplate.objects.create(name=path.stem, body=path.read_text(), present=True,
                                      valid=path.stem != "template-broken")
    return demo


def principal(name):
    return AWSRole.objects.get(account=Account.objects.default(), name=name)


def test_the_demo_seeds_requests_for_just_enough_access(seeded):
    reader, pattern = principal("data-reader"), principal("bucket-access")
    assert reader.request_policy.narrowing_allowed and reader.request_policy.dedicated_allowed
    assert pattern.parameters_allowed and pattern.request_policy.dedicated_allowed

    narrowed = scoping.prepare(reader, reader.request_policy, {
        "mode": "narrowed", "actions": "s3:GetObject",
        "resources": "arn:aws:s3:::123456789012-data-reader-data/exports/*"})
    assert narrowed.mode == ScopeMode.NARROWED
    assert json.loads(narrowed.policy)["Statement"][0]["Action"] == ["s3:GetObject"]
    built = scoping.prepare(pattern, pattern.request_policy, {"mode": "dedicated", "parameters": "bucket=team-reports"})
    assert json.loads(built.policy)["Statement"][0]["Resource"] == ["arn:aws:s3:::team-reports",
                                                                   "arn:aws:s3:::team-reports/*"]
    source = TrailSource.objects.get(name="demo trail")
    assert source.logs_data_events and source.reading_since is not None


def test_the_demo_state_exported_as_code_plans_no_change(seeded, tmp_path, capsys):
    call_command("akeru_export", "--out", str(tmp_path))
    call_command("akeru_plan", str(tmp_path))  # exit status 2 (SystemExit) on any change
    assert "No changes" in capsys.readouterr().out

"""Structured logs (akeru/logs.py): AKERU_LOG_FORMAT=json writes one JSON object a line with the bound
context, withholds secrets from messages, fields and tracebacks, and an unknown format stops the start."""

import logging
import os
import subprocess
import sys
from pathlib import Path

from akeru import logs

REPO = Path(__file__).resolve().parents[2]

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEYx1"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKENIQoJb3JpZ2luX2VjEJr"
API_TOKEN = "akeru_" + "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
TOTP_URI = "otpauth://totp/Akeru:alice?secret=JBSWY3DPEHPK3PXP&issuer=Akeru"

CREATE_ACCESS_KEY = f"""<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateAccessKeyResult><AccessKey><UserName>alice</UserName><AccessKeyId>AKIAEXAMPLEKEY123456</AccessKeyId>
  <Status>Active</Status><SecretAccessKey>{SECRET_KEY}</SecretAccessKey></AccessKey></CreateAccessKeyResult>
</CreateAccessKeyResponse>""".encode()
GET_SESSION_TOKEN = f"""<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetSessionTokenResult><Credentials><SessionToken>{SESSION_TOKEN}</SessionToken>
  <SecretAccessKey>{SECRET_KEY}</SecretAccessKey><Expiration>2026-12-02T12:00:00Z</Expiration>
  <AccessKeyId>ASIAEXAMPLE123456789</AccessKeyId></Credentials></GetSessionTokenResult>
</GetSessionTokenResponse>""".encode()
ASSUME_ROLE = GET_SESSION_TOKEN.replace(b"GetSessionToken", b"AssumeRole")


def test_botocore_bodies_and_any_line_carrying_a_secret_are_withheld(json_logs):
    botocore = logging.getLogger("botocore.parsers")
    previous = botocore.level
    botocore.setLevel(logging.DEBUG)  # whoever turns DEBUG on
    try:
        for body in (CREATE_ACCESS_KEY, GET_SESSION_TOKEN, ASSUME_ROLE):
            botocore.debug("Response body:\n%r", body)  # what botocore.parsers logs
    finally:
        botocore.setLevel(previous)
    other = logging.getLogger("akeru.somewhere")
    other.warning("signed request: X-Amz-Security-Token=%s", SESSION_TOKEN)
    other.warning("minted %s for alice", API_TOKEN)
    other.warning("enrolment for alice: %s", TOTP_URI)
    other.warning("a field", extra={"credentials": {"SecretAccessKey": SECRET_KEY}})
    try:
        raise RuntimeError(f"could not check aws_secret_access_key={SECRET_KEY}")
    except RuntimeError:
        other.exception("checking a key failed")

    lines = json_logs.lines()  # every line parses
    assert len(lines) == 8, json_logs.text
    for secret in (SECRET_KEY, SESSION_TOKEN, API_TOKEN, "JBSWY3DPEHPK3PXP"):
        assert secret not in json_logs.text
    assert [line["logger"] for line in lines[:3]] == ["botocore.parsers"] * 3
    assert all("withheld by Akeru" in line["message"] for line in lines[:3])
    assert lines[6]["credentials"] == logs.WITHHELD
    assert lines[7]["message"] == "checking a key failed" and "withheld by Akeru" in lines[7]["exc_info"]


def test_a_line_names_the_bound_context_and_keeps_a_plain_traceback(json_logs):
    log = logging.getLogger("akeru.tasks")
    with logs.bound(request_id="req-1", task_id="t-1", task="akeru.sync_principal"):
        logs.bind(principal={"id": 7, "name": "analytics-reader"}, account="123456789012")
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("%s: sync failed", "analytics-reader")
    log.info("after the task")

    during, after = json_logs.lines()
    assert during["level"] == "ERROR" and during["logger"] == "akeru.tasks"
    assert during["message"] == "analytics-reader: sync failed"
    assert during["time"].endswith("+00:00") and "T" in during["time"]  # RFC 3339, UTC
    assert (during["request_id"], during["task_id"], during["task"]) == ("req-1", "t-1", "akeru.sync_principal")
    assert during["principal"] == {"id": 7, "name": "analytics-reader"} and during["account"] == "123456789012"
    assert isinstance(during["exc_info"], str) and "ZeroDivisionError" in during["exc_info"]
    assert not {"request_id", "task_id", "principal", "account"} & set(after)  # the block ended: gone


def test_an_incoming_request_id_is_kept_only_when_it_is_a_sane_short_token():
    assert logs.request_id_from("abc-123_X.y:z") == "abc-123_X.y:z"
    for bad in ("", None, "has space", "x" * 65, 'quote"d', "line\nbreak", "-leading"):
        made = logs.request_id_from(bad)
        assert made != bad and len(made) == 32 and made.isalnum()


def test_an_unknown_log_format_stops_the_start_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(DJANGO_SETTINGS_MODULE="worker.settings", AKERU_LOG_FORMAT="yaml")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "AKERU_LOG_FORMAT must be one of text, json, not 'yaml'." in result.stderr

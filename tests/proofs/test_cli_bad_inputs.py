"""The ``akeru`` command line's bad inputs, each run as the console script against a live Akeru: the
message is one line ``akeru: …`` on standard error, the exit status is not 0, and standard output —
what the AWS CLI reads as credentials — stays empty. (A grant that ends while cached, garbage in the
cache, wrong permissions, a missing command and a port already taken are in tests/integration/cli/.)"""

from datetime import timedelta

from django.utils import timezone

from akeru.models import ApiToken
from tests.helpers.access import grant, principal
from tests.helpers.cli import Laptop, vends
from tests.helpers.web import code, enrol
from tests.integration.cli.test_helper_redirects import Recorder

NOWHERE = "http://127.0.0.1:9"  # nothing listens there


def refused(result, expected):
    """The one line the person sees, checked; never a credential on standard output."""
    assert result.returncode != 0 and result.stdout == "", (result.returncode, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("akeru: ") and expected in lines[0], lines[0]
    return lines[0]


def answering(status, body=b"", **headers):
    """A ``Recorder`` answer: ``status``, ``headers`` (``Content_Type`` for ``Content-Type``) and ``body``."""
    def answer(handler):
        handler.send_response(status)
        for name, value in {**headers, "Content_Length": str(len(body))}.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)
    return answer


html_page = answering(200, b"<!doctype html><title>Not Akeru</title>", Content_Type="text/html")
elsewhere = answering(302, Location="http://127.0.0.2:9/api/v1/principals/dev/credentials/")
# JSON, but not what Akeru answers: principals without their ``ref``
wrong_shape = answering(200, b'{"principals": [{"usable": true, "name": "dev"}]}', Content_Type="application/json")


def test_no_network(tmp_path):
    refused(Laptop(tmp_path, NOWHERE, "akeru_x").run("creds", "dev"), f"cannot reach {NOWHERE}")


def test_a_url_that_is_not_akeru(tmp_path):
    with Recorder(html_page) as server:
        refused(Laptop(tmp_path, server.url, "akeru_x").run("creds", "dev"), "is --url Akeru's address?")


def test_a_redirect_to_another_host_is_not_followed(tmp_path):
    with Recorder(elsewhere) as server:
        line = refused(Laptop(tmp_path, server.url, "akeru_x").run("creds", "dev"), "redirected (HTTP 302)")
    assert "127.0.0.2" in line and len(server.seen) == 1  # the token went nowhere else


def test_an_answer_of_the_wrong_shape_is_one_line_not_a_traceback(tmp_path):
    with Recorder(wrong_shape) as server:
        line = refused(Laptop(tmp_path, server.url, "akeru_secret-token").run("profiles"), "unexpected answer")
    assert "akeru_secret-token" not in line
    assert not (tmp_path / ".aws").exists()


def test_an_address_that_is_not_https(tmp_path):
    refused(Laptop(tmp_path, "http://akeru.example.com", "akeru_x").run("creds", "dev"), "plain http://")


def test_an_expired_token(laptop):
    ApiToken.objects.filter(user=laptop.user).update(expires_at=timezone.now() - timedelta(minutes=1))
    refused(laptop.run("creds", "dev"), "expired on")
    assert vends("dev") == 0


def test_a_principal_not_granted_reads_as_one_that_does_not_exist(laptop):
    principal("other")
    not_granted = refused(laptop.run("creds", "other"), "(AccessDenied, HTTP 403)")
    unknown = refused(laptop.run("creds", "nothing-here"), "(AccessDenied, HTTP 403)")
    assert not_granted.replace("'other'", "X") == unknown.replace("'nothing-here'", "X")


def test_a_wrong_mfa_code(laptop):
    grant(principal("ops", mfa=True), user=laptop.user)
    device = enrol(laptop.client, laptop.user)
    window = {code(device, steps_ahead=step) for step in (-2, -1, 0, 1, 2)}  # any code the check might accept
    wrong = next(f"{n:06d}" for n in range(1000000) if f"{n:06d}" not in window)
    refused(laptop.run("creds", "ops", "--mfa-code", wrong), "The MFA code is wrong, expired or was already used")
    assert vends("ops") == 0


def test_a_reused_mfa_code(laptop):
    grant(principal("ops", mfa=True), user=laptop.user)
    device = enrol(laptop.client, laptop.user)
    good = code(device, steps_ahead=1)  # enrolment spent the current step's code
    assert laptop.run("creds", "ops", "--mfa-code", good).returncode == 0
    other_cache = laptop.home / "other-cache"  # a second command that cannot answer from the first one's cache
    refused(laptop.run("creds", "ops", "--mfa-code", good, XDG_CACHE_HOME=str(other_cache)),
            "The MFA code is wrong, expired or was already used")
    assert vends("ops") == 1

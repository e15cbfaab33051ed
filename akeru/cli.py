"""``akeru-credentials``: temporary AWS credentials from Akeru for the AWS CLI's ``credential_process``.

    [profile developer]
    credential_process = akeru-credentials --url https://akeru.example.com --role developer

Prints the JSON the AWS CLI expects (``Version: 1`` with ``Expiration``) on standard output and
nothing else; every problem goes to standard error with exit status 1. The personal API token (create
it on the access page) is read from ``$AKERU_TOKEN`` or ``~/.config/akeru/token`` (or ``--token-file``),
never from the command line, where other users could see it. For a principal that requires MFA the
code comes from ``--mfa-code``, ``$AKERU_MFA_CODE``, or a prompt on the terminal (``/dev/tty``, which
works even though the AWS CLI captures standard output).

The token goes only where ``--url`` points: the URL must be ``https://`` (plain ``http://`` only to this
machine: 127.0.0.0/8, ``::1``, ``localhost``), and an answer that redirects elsewhere is refused rather
than followed, so neither the token nor the "credentials" come from another place.

Standard library only: it runs wherever Python 3 does, without Django.
"""

import argparse
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_TOKEN_FILE = Path("~/.config/akeru/token")
TIMEOUT = 30


class Problem(Exception):
    pass


def read_token(token_file):
    token = os.environ.get("AKERU_TOKEN", "").strip()
    if token:
        return token
    path = Path(token_file).expanduser() if token_file else DEFAULT_TOKEN_FILE.expanduser()
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise Problem(f"no API token: set AKERU_TOKEN or save one in {path} (create it on the Akeru access page)") from None
    except OSError as exc:
        raise Problem(f"cannot read the API token from {path}: {exc.strerror}") from None
    if not token:
        raise Problem(f"{path} is empty; save your API token in it")
    return token


def prompt_mfa(role):
    """Ask on the terminal; the AWS CLI captures stdout and may not pass stdin through."""
    try:  # one stream each way: Python refuses to open a terminal for both (it is not seekable)
        with open("/dev/tty") as tty_in, open("/dev/tty", "w") as tty_out:
            tty_out.write(f"MFA code for {role}: ")
            tty_out.flush()
            return tty_in.readline().strip()
    except OSError:  # no terminal (e.g. under cron): Akeru's answer says a code is needed
        return ""


def is_loopback(host):
    """127.0.0.0/8, ::1 or ``localhost``: the only hosts plain ``http://`` may carry a token to."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin(url):
    """(scheme, host, port) of ``url``, the default port filled in."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def check_url(url):
    """Refuse, before any connection, an address the token must not be sent to."""
    try:
        scheme, host, _ = origin(url)
    except ValueError as exc:  # e.g. a port that is not a number
        raise Problem(f"--url {url!r} is not a valid address: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise Problem(f"--url {url!r} is not an https:// address such as https://akeru.example.com")
    if scheme == "http" and not is_loopback(host):
        raise Problem(f"refusing to send the API token over plain http:// to {host}: "
                      "use Akeru's https:// address (http:// is only for 127.0.0.1, ::1 or localhost)")


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect, and say where it pointed.

    To another origin, following would hand the bearer token to that host (urllib copies the
    ``Authorization`` header onto the redirected request) and print its answer as credentials.
    Within the origin there is nothing to gain: Akeru answers the credentials endpoint itself, never
    with a redirect, and urllib turns a redirected POST into a GET without its body (the MFA code),
    which Akeru refuses. So a redirect always means ``--url`` is not Akeru's own address.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        fp.close()
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            raise Problem(f"{req.full_url} redirected (HTTP {code}) to another site, {target}; refusing to "
                          "follow it (the API token was not sent there). Give Akeru's own address as --url.")
        raise Problem(f"{req.full_url} redirected (HTTP {code}) to {target}; not following it. "
                      "Give Akeru's own address as --url.")


def request_credentials(url, role, token, mfa_code=None, user_agent="akeru-credentials"):
    check_url(url)
    endpoint = f"{url.rstrip('/')}/access/{urllib.parse.quote(role, safe='')}/credentials/"
    data = urllib.parse.urlencode({"mfa_code": mfa_code} if mfa_code else {}).encode()
    request = urllib.request.Request(endpoint, data=data, method="POST", headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": user_agent,
    })
    handlers = [RefuseRedirects()]  # replaces urllib's default redirect handler
    if is_loopback(urllib.parse.urlsplit(endpoint).hostname):
        handlers.append(urllib.request.ProxyHandler({}))  # this machine: never through a proxy
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            raise Problem(f"{endpoint} answered HTTP {exc.code} without JSON; is --url Akeru's address?") from None
    except urllib.error.URLError as exc:
        raise Problem(f"cannot reach {url}: {exc.reason}") from None
    except TimeoutError:
        raise Problem(f"{url} did not answer within {TIMEOUT} s") from None
    except ValueError:
        raise Problem(f"{endpoint} did not answer with JSON; is --url Akeru's address?") from None


def fetch(url, role, token, mfa_code=None, ask=prompt_mfa):
    status, answer = request_credentials(url, role, token, mfa_code)
    error = answer.get("Error") if isinstance(answer, dict) else None
    if error and error.get("Code") == "MFARequired" and not mfa_code:
        code = ask(role)
        if code:
            status, answer = request_credentials(url, role, token, code)
            error = answer.get("Error") if isinstance(answer, dict) else None
    if error:
        raise Problem(f"{error.get('Message') or error.get('Code')} ({error.get('Code')}, HTTP {status})")
    missing = [k for k in ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration") if k not in answer]
    if status != 200 or missing:
        raise Problem(f"unexpected answer from Akeru (HTTP {status}; missing {', '.join(missing) or 'nothing'})")
    return answer


def main(argv=None):
    parser = argparse.ArgumentParser(prog="akeru-credentials", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="Akeru's address, e.g. https://akeru.example.com")
    parser.add_argument("--role", required=True, help="the principal's name, as on the access page")
    parser.add_argument("--token-file", help=f"file holding your API token (default $AKERU_TOKEN, then {DEFAULT_TOKEN_FILE})")
    parser.add_argument("--mfa-code", help="current MFA code (default $AKERU_MFA_CODE, then a prompt on the terminal)")
    args = parser.parse_args(argv)
    try:
        token = read_token(args.token_file)
        credentials = fetch(args.url, args.role, token, args.mfa_code or os.environ.get("AKERU_MFA_CODE") or None)
    except Problem as problem:
        print(f"akeru-credentials: {problem}", file=sys.stderr)
        return 1
    json.dump(credentials, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

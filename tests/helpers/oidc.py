"""Signing in through the local identity provider as a browser does, over real HTTP (requests, no proxy
from the environment): Akeru's /accounts/oidc/login/, the provider's password form, Akeru's callback."""

from __future__ import annotations

import re
from urllib.parse import quote

import requests


def browser():
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy of the environment
    return session


def start(base_url, session, next_url=None):
    """Akeru's sign-in link, followed to the provider's password form: ``(response, csrf)``."""
    url = f"{base_url}/accounts/oidc/login/" + (f"?next={quote(next_url)}" if next_url else "")
    page = session.get(url, timeout=10)
    found = re.search(r"name='csrf' value='([^']+)'", page.text)
    return page, found.group(1) if found else None


def sso_sign_in(base_url, username, password=None, session=None, next_url=None):
    """Sign ``username`` in through the provider; the last answer (Akeru's page, or its refusal) and the session."""
    session = session or browser()
    page, csrf = start(base_url, session, next_url)
    if csrf is None:  # Akeru refused before sending the browser to the provider
        return page, session
    answer = session.post(page.url, data={"username": username, "password": password or username, "csrf": csrf},
                          timeout=10)
    return answer, session


def authorized_callback(base_url, username, session):
    """Run the flow up to the provider's redirect back to Akeru, without following it: the callback URL."""
    page, csrf = start(base_url, session)
    answer = session.post(page.url, data={"username": username, "password": username, "csrf": csrf},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]

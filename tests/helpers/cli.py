"""The ``akeru`` command line as a person's laptop runs it: the console script, its own HOME (config,
cache, ``~/.aws/config``) and environment, and the AWS CLI from its own virtualenv (``make awscli``;
``$AKERU_AWSCLI``), which pins a botocore of its own."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from akeru.models import AuditEvent

AKERU = Path(sys.executable).with_name("akeru")
HELPER = Path(sys.executable).with_name("akeru-credentials")
REPO = Path(__file__).resolve().parents[2]
AWSCLI = Path(os.environ.get("AKERU_AWSCLI") or REPO / ".venv-awscli" / "bin" / "aws")


def vends(name):
    return AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS, outcome=AuditEvent.Outcome.SUCCESS,
                                     principal_name=name).count()


class Laptop:
    """A person's machine: its own HOME (config, cache, ~/.aws/config) and environment."""

    def __init__(self, home, url, token=None):
        self.home, self.url, self.token = home, url, token
        self.aws_config = home / ".aws" / "config"

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AKERU_") and not k.lower().endswith("_proxy") and k != "AWS_PROFILE"}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"),
                   XDG_CACHE_HOME=str(self.home / ".cache"), AKERU_NO_KEYRING="1", AKERU_URL=self.url,
                   AWS_CONFIG_FILE=str(self.aws_config), AWS_SHARED_CREDENTIALS_FILE=str(self.home / "no-credentials"),
                   AWS_DEFAULT_REGION="us-east-1")
        if self.token:
            env["AKERU_TOKEN"] = self.token
        env.update(extra)
        return env

    def run(self, *argv, **extra):
        return subprocess.run([str(AKERU), *argv], env=self.env(**extra), capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, start_new_session=True)  # no terminal

    def aws(self, *argv, **extra):
        if not AWSCLI.exists():
            pytest.fail(f"the AWS CLI is not at {AWSCLI}: run `make awscli` (or point AKERU_AWSCLI at it)", pytrace=False)
        return subprocess.run([str(AWSCLI), *argv], env=self.env(**extra), capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, start_new_session=True)

    def profile(self, name, ref):
        self.aws_config.parent.mkdir(parents=True, exist_ok=True)
        with self.aws_config.open("a") as out:
            out.write(f"[profile {name}]\ncredential_process = {AKERU} creds {ref} --url {self.url}\n")


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]

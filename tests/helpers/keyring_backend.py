"""A keyring backend for the tests: the ``keyring`` package's own API over a JSON file (``$AKERU_TEST_KEYRING``),
chosen with ``PYTHON_KEYRING_BACKEND=tests.helpers.keyring_backend.FileKeyring`` — a stand-in for the OS
keyring (macOS Keychain, Secret Service), which a headless test machine does not have."""

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1

    @property
    def _path(self):
        return Path(os.environ["AKERU_TEST_KEYRING"])

    def _read(self):
        return json.loads(self._path.read_text()) if self._path.exists() else {}

    def get_password(self, service, username):
        return self._read().get(f"{service}\n{username}")

    def set_password(self, service, username, password):
        entries = self._read()
        entries[f"{service}\n{username}"] = password
        self._path.write_text(json.dumps(entries))

    def delete_password(self, service, username):
        entries = self._read()
        if entries.pop(f"{service}\n{username}", None) is None:
            raise PasswordDeleteError(username)
        self._path.write_text(json.dumps(entries))

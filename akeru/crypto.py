"""Encryption at rest for the secrets Akeru holds (IAM-user secret access keys).

``AKERU_ENCRYPTION_KEYS`` lists Fernet keys, comma-separated, newest first. ``encrypt`` always uses
the newest; ``decrypt`` tries each in turn (``cryptography.fernet.MultiFernet``), so data written
under an older key stays readable until ``manage.py akeru_reencrypt`` moves it to the newest.

Nothing here ever puts a secret or a key into an exception message or a log line.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .settings.accessor import akeru_settings

GENERATE = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class SecretUnavailable(Exception):
    """A stored secret cannot be encrypted or decrypted; the message says what to fix (never the secret)."""


def generate_key():
    """A new Fernet key as text (what goes into AKERU_ENCRYPTION_KEYS)."""
    return Fernet.generate_key().decode()


def _configured():
    value = akeru_settings.AKERU_ENCRYPTION_KEYS
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def problems():
    """Why AKERU_ENCRYPTION_KEYS cannot be used, or []. Names a bad key by its position only."""
    keys = _configured()
    if not keys:
        return [f"AKERU_ENCRYPTION_KEYS is not set. Generate a key with {GENERATE} and set "
                "AKERU_ENCRYPTION_KEYS to it (comma-separated, newest first, when you rotate keys)."]
    found = []
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            found.append(f"AKERU_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a Fernet key "
                         f"(32 url-safe base64-encoded bytes). Generate one with {GENERATE}.")
    return found


_cache = {}


def _multi():
    keys = tuple(_configured())
    if keys not in _cache:
        found = problems()
        if found:
            raise SecretUnavailable(" ".join(found))
        _cache.clear()
        _cache[keys] = (MultiFernet([Fernet(k) for k in keys]), Fernet(keys[0]))
    return _cache[keys]


def encrypt(text: str) -> str:
    """``text`` encrypted under the newest key (a Fernet token, ASCII)."""
    return _multi()[0].encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of ``token``; SecretUnavailable when no configured key decrypts it."""
    multi = _multi()[0]
    try:
        return multi.decrypt(token.encode()).decode()
    except (InvalidToken, ValueError, TypeError, AttributeError):
        raise SecretUnavailable(
            f"the stored secret cannot be decrypted with any of the {len(_configured())} key(s) in "
            "AKERU_ENCRYPTION_KEYS: add the key it was encrypted with (older keys go after the newest), "
            "or rotate the access key to store a new secret."
        ) from None


def is_current(token: str) -> bool:
    """Whether ``token`` is already encrypted under the newest key."""
    try:
        _multi()[1].decrypt(token.encode())
    except (InvalidToken, ValueError, TypeError):
        return False
    return True


def reencrypt(token: str) -> str:
    """``token`` re-encrypted under the newest key; SecretUnavailable when no key decrypts it."""
    multi = _multi()[0]
    try:
        return multi.rotate(token.encode()).decode()
    except (InvalidToken, ValueError, TypeError):
        raise SecretUnavailable(
            "a stored secret cannot be decrypted with any key in AKERU_ENCRYPTION_KEYS, so it cannot be "
            "re-encrypted: add the key it was encrypted with."
        ) from None


def reencrypt_rows(queryset, field, label):
    """Re-encrypt ``field`` of every row of ``queryset`` under the newest key. Returns ``(changed, total,
    the ``label`` of each row no configured key decrypts)``; a row changed meanwhile is left as that
    change wrote it (the update matches the token read)."""
    changed, total, unreadable = 0, 0, []
    rows = queryset.exclude(**{field: ""}).order_by("pk").values_list("pk", field, label)
    for pk, token, name in rows.iterator():
        total += 1
        if is_current(token):
            continue
        try:
            new = reencrypt(token)
        except SecretUnavailable:
            unreadable.append(name)
            continue
        changed += queryset.model.objects.filter(pk=pk, **{field: token}).update(**{field: new})
    return changed, total, unreadable

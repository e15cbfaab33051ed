"""akeru.crypto: MultiFernet under AKERU_ENCRYPTION_KEYS, and the system check that guards it."""

import pytest
from cryptography.fernet import Fernet

from akeru import crypto
from akeru.checks import check_settings

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_round_trip_and_token_is_not_the_plaintext(settings):
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    token = crypto.encrypt(SECRET)
    assert SECRET not in token and crypto.decrypt(token) == SECRET
    assert crypto.encrypt(SECRET) != token, "Fernet tokens carry a fresh IV"


def test_data_under_an_older_key_stays_readable_and_moves_to_the_newest(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.AKERU_ENCRYPTION_KEYS = old
    token = crypto.encrypt(SECRET)
    settings.AKERU_ENCRYPTION_KEYS = f"{new}, {old}"  # newest first, spaces tolerated
    assert crypto.decrypt(token) == SECRET and not crypto.is_current(token)
    moved = crypto.reencrypt(token)
    assert crypto.is_current(moved) and crypto.decrypt(moved) == SECRET
    settings.AKERU_ENCRYPTION_KEYS = new  # the old key may now go
    assert crypto.decrypt(moved) == SECRET
    with pytest.raises(crypto.SecretUnavailable, match="cannot be decrypted with any of the 1 key"):
        crypto.decrypt(token)


@pytest.mark.parametrize("value, expected", [
    (None, "AKERU_ENCRYPTION_KEYS is not set. Generate a key with python -c"),
    ("", "AKERU_ENCRYPTION_KEYS is not set"),
    ("not-a-key", "key 1 of 1 is not a Fernet key"),
    (f"{Fernet.generate_key().decode()},short", "key 2 of 2 is not a Fernet key"),
])
def test_missing_or_malformed_keys_fail_the_system_check_and_every_use(settings, value, expected):
    settings.AKERU_ENCRYPTION_KEYS = value
    errors = [e for e in check_settings() if e.id == "akeru.E007"]
    assert errors and expected in errors[0].msg and errors[0].level >= 40  # ERROR, not a warning
    assert "Fernet.generate_key()" in errors[0].msg
    with pytest.raises(crypto.SecretUnavailable) as raised:
        crypto.encrypt(SECRET)
    assert expected in str(raised.value)
    if value:
        for part in value.split(","):
            assert part not in str(raised.value) and part not in errors[0].msg, "never echo a key"


def test_a_wrong_key_says_what_to_fix_and_never_the_secret(settings):
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    token = crypto.encrypt(SECRET)
    settings.AKERU_ENCRYPTION_KEYS = Fernet.generate_key().decode()
    with pytest.raises(crypto.SecretUnavailable) as raised:
        crypto.decrypt(token)
    message = str(raised.value)
    assert "add the key it was encrypted with" in message
    assert SECRET not in message and token not in message
    with pytest.raises(crypto.SecretUnavailable):
        crypto.decrypt("garbage")


@pytest.mark.parametrize("name, value", [("AKERU_KEY_MAX_AGE_DAYS", 0), ("AKERU_KEY_GRACE_SECONDS", "soon"),
                                         ("AKERU_KEY_VERIFY_ATTEMPTS", 1.5), ("AKERU_KEY_VERIFY_DELAY", -1)])
def test_bad_key_settings_fail_the_system_check(settings, name, value):
    setattr(settings, name, value)
    assert any(e.id == "akeru.E008" and name in e.msg for e in check_settings())

"""What an ID token's claims say about a person, for the single sign-on: their groups, whether a second
factor was used, the username a first sign-in creates. Pure: the token has already been validated
(signature, issuer, audience, expiry, nonce) by the sign-in before these read it.

Each problem is a ``ClaimProblem`` with a code and a sentence the person (and the audit log) reads.
"""

import re

USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")  # what Django's username validator accepts


class ClaimProblem(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def group_values(claims, claim):
    """The identity provider's group values in ``claims[claim]``: a list of strings (a single string is
    one group). Refused: Entra's "overage" (``_claim_names`` names the claim instead of carrying it: the
    person is in more groups than a token holds), a missing claim, anything but strings."""
    names = claims.get("_claim_names")
    if isinstance(names, dict) and claim in names:
        raise ClaimProblem("GroupsOverage", (
            f"The identity provider sent a pointer instead of the {claim!r} claim (Entra's groups overage: the "
            f"person is in more groups than fit in a token). Emit only the groups assigned to the application "
            f"(Entra: Token configuration → groups claim → \"Groups assigned to the application\")."))
    if claim not in claims:
        raise ClaimProblem("GroupsMissing", (
            f"The identity provider's ID token has no {claim!r} claim, so Akeru cannot tell this person's groups. "
            f"Configure the provider to send it (AKERU_OIDC_GROUPS_CLAIM names the claim Akeru reads)."))
    value = claims[claim]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClaimProblem("GroupsInvalid", f"The ID token's {claim!r} claim is not a list of group names or ids.")
    return sorted({v.strip() for v in value if v.strip()})


def mfa_done(claims, mfa_values):
    """True when the token's ``amr`` (a list) or ``acr`` (a string) holds one of ``mfa_values``."""
    wanted = {v.strip() for v in mfa_values if v and v.strip()}
    amr = claims.get("amr")
    amr = [amr] if isinstance(amr, str) else amr if isinstance(amr, list) else []
    acr = claims.get("acr")
    return bool(wanted & {v for v in amr if isinstance(v, str)}) or (isinstance(acr, str) and acr in wanted)


def username_from(claims, claim):
    """The username a first sign-in gives the new user: the ``claim`` claim as it is; refused when absent or
    not a valid Django username (it is never changed to fit: two people must not end up looking alike)."""
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise ClaimProblem("UsernameMissing", (
            f"The ID token has no {claim!r} claim to name a new Akeru user after (AKERU_OIDC_USERNAME_CLAIM)."))
    value = value.strip()
    if not USERNAME_RE.match(value):
        raise ClaimProblem("UsernameInvalid", (
            f"The ID token's {claim!r} claim ({value[:80]!r}) is not a valid username: letters, digits and "
            f"@ . + - _ only, at most 150 characters."))
    return value

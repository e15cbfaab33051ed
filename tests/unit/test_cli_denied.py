"""``akeru denied``'s printing, table-driven over the API's shapes (the live path is in
tests/integration/ledger/test_denials.py): one line a denial, then what to do about it."""

import pytest

from akeru import cli

BASE = {"principal": {"ref": "123456789012/dev", "name": "dev"}, "action": "s3:PutObject",
        "resource": "arn:aws:s3:::reports/q5.csv", "count": 1, "last_at": "2026-12-02T14:02:31.123456Z",
        "explanation": "implicit: no policy of the principal allows it (a request for it could)",
        "suggestion": None, "explicit": None, "hint": None}
STATEMENT = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::reports/q5.csv"}


@pytest.mark.parametrize("changes, line", [
    ({}, "2026-12-02 14:02 UTC  denied s3:PutObject on arn:aws:s3:::reports/q5.csv under 123456789012/dev"),
    ({"count": 3, "resource": ""}, "2026-12-02 14:02 UTC  denied s3:PutObject under 123456789012/dev (3 times)"),
    ({"principal": None, "last_at": "garbage"}, "?  denied s3:PutObject on arn:aws:s3:::reports/q5.csv under a "
                                                "principal gone from Akeru"),
])
def test_denial_line(changes, line):
    assert cli.denial_line({**BASE, **changes}) == line


@pytest.mark.parametrize("changes, advice", [
    ({"suggestion": {"statement": STATEMENT, "flags": [], "request_command": "akeru request dev …", "ask": None}},
     [BASE["explanation"], 'would allow it: {"Action": "s3:PutObject", "Effect": "Allow", "Resource": '
      '"arn:aws:s3:::reports/q5.csv"}', "request it: akeru request dev …"]),
    ({"suggestion": {"statement": STATEMENT, "flags": ["iam:PassRole on *"], "request_command": None,
                     "ask": "dev cannot be requested: ask the Akeru operators …"}},
     [BASE["explanation"], 'would allow it: {"Action": "s3:PutObject", "Effect": "Allow", "Resource": '
      '"arn:aws:s3:::reports/q5.csv"}', "flag: iam:PassRole on *", "dev cannot be requested: ask the Akeru operators …"]),
    ({"suggestion": {"statement": None, "note": "AWS named only arn:…/*, a wildcard: Akeru suggests none.",
                     "flags": [], "request_command": None, "ask": None}},
     [BASE["explanation"], "AWS named only arn:…/*, a wildcard: Akeru suggests none."]),
    ({"explanation": "explicit deny in the principal's permissions boundary: the Akeru operators set it",
      "explicit": {"policy": "boundary", "who_can_change": "the principal's permissions boundary: the Akeru "
                                                             "operators set it"}},
     ["explicit deny in the principal's permissions boundary: the Akeru operators set it",
      "a request to Akeru cannot lift it"]),
    ({"explanation": "implicit: no session policy allows it",
      "explicit": {"policy": "session", "who_can_change": "the session policy …"}},
     ["implicit: no session policy allows it", "who can change it: the session policy …; a request to Akeru cannot "
                                               "lift it"]),
    ({"explanation": "denied (AWS's message does not say by what)", "hint": "decode it"},
     ["denied (AWS's message does not say by what)", "decode it"]),
])
def test_denial_advice(changes, advice):
    assert cli.denial_advice({**BASE, **changes}) == advice

"""The name STS is given for a person (RoleSessionName, SourceIdentity, GetFederationToken's Name).

CloudTrail shows it, so it must tell people apart, stay readable, stay the same from one vend to
the next, and always be a value STS accepts: the shapes are read from botocore's model of STS.
"""

import re

import botocore.session
import pytest

from akeru.aws.sts import FEDERATED_NAME_MAX, SESSION_NAME_MAX, person_name

_STS = botocore.session.get_session().get_service_model("sts")


def shape(operation, member):
    meta = _STS.operation_model(operation).input_shape.members[member].metadata
    return re.compile(meta["pattern"], re.ASCII), meta["min"], meta["max"]


FIELDS = {  # the limit Akeru uses → every AWS field given a name of that length
    SESSION_NAME_MAX: [shape("AssumeRole", "RoleSessionName"), shape("AssumeRole", "SourceIdentity")],
    FEDERATED_NAME_MAX: [shape("GetFederationToken", "Name")],
}

# (username, user id, limit, expected name)
CASES = [
    ("alice", 1, SESSION_NAME_MAX, "alice"),  # plain and fits: unchanged, existing CloudTrail queries keep working
    ("alice", 1, FEDERATED_NAME_MAX, "alice"),
    ("Zoe.O+ops@example.com", 2, SESSION_NAME_MAX, "Zoe.O+ops@example.com"),
    ("alicé", 3, SESSION_NAME_MAX, "alice-u3"),  # accents dropped: readable, and the suffix says who
    ("ålice", 4, SESSION_NAME_MAX, "alice-u4"),
    ("алиса", 5, SESSION_NAME_MAX, "alisa-u5"),  # Cyrillic transliterated, not "akeru-user"
    ("алина", 6, SESSION_NAME_MAX, "alina-u6"),
    ("爱丽丝", 7, SESSION_NAME_MAX, "AiLiSi-u7"),  # CJK too
    ("王芳", 8, FEDERATED_NAME_MAX, "WangFang-u8"),
    ("Zoë O'Brien+ops@example.com", 9, SESSION_NAME_MAX, "Zoe-O-Brien+ops@example.com-u9"),
    ("a", 10, SESSION_NAME_MAX, "a-u10"),  # too short for STS: padded by the suffix
    ("", 11, SESSION_NAME_MAX, "user-u11"),
    ("😀", 12, SESSION_NAME_MAX, "grinning-u12"),
    ("aws:admin", 13, SESSION_NAME_MAX, "aws-admin-u13"),  # never the reserved "aws:" prefix
    ("alice-u3", 14, SESSION_NAME_MAX, "alice-u3-u14"),  # nobody takes alicé's name by choosing it
    ("d" * 64, 15, SESSION_NAME_MAX, "d" * 64),  # exactly fits
    ("d" * 65, 16, SESSION_NAME_MAX, "d" * 60 + "-u16"),  # truncated: the readable part, never the suffix
    ("first.last.from.the.directory@example.com", 17, FEDERATED_NAME_MAX, "first.last.from.the.director-u17"),
    ("first.last.from.the.directory@example.org", 18, FEDERATED_NAME_MAX, "first.last.from.the.director-u18"),
    ("x" * 31 + " y", 123456, FEDERATED_NAME_MAX, "x" * 24 + "-u123456"),
]


@pytest.mark.parametrize(("username", "user_id", "limit", "expected"), CASES)
def test_person_name(username, user_id, limit, expected):
    name = person_name(username, user_id, limit)
    assert name == expected
    assert person_name(username, user_id, limit) == name  # stable: the same person gets the same name every vend
    for pattern, low, high in FIELDS[limit]:
        assert pattern.fullmatch(name) and low <= len(name) <= min(high, limit), (name, pattern.pattern, high)
    assert not name.lower().startswith("aws:")


def test_different_people_never_share_a_name():
    """The people above (a username is one person's, as in Django), at every limit: no two share a
    name, whatever the reduction made of their usernames (``alice-u3`` is not ``alicé``, user 3)."""
    people = {}
    for username, user_id, _, _ in CASES:
        people.setdefault(username, user_id)
    for limit in FIELDS:
        names = {}
        for username, user_id in people.items():
            names.setdefault(person_name(username, user_id, limit), set()).add(username)
        assert all(len(owners) == 1 for owners in names.values()), {n: o for n, o in names.items() if len(o) > 1}


@pytest.mark.parametrize("limit", sorted(FIELDS))
def test_usernames_sharing_the_first_characters_stay_apart(limit):
    prefix = "k" * limit
    assert person_name(prefix + "-anna", 101, limit) != person_name(prefix + "-anne", 102, limit)
    assert person_name("alicé", 3, limit) != person_name("ålice", 4, limit)
    assert person_name("алиса", 5, limit) != person_name("爱丽丝", 7, limit) != "akeru-user"

"""Purpose-built roles: the IAM role Akeru builds for one approved access request and removes when its
access ends. Their name, trust policy and tags. Pure: standard library only.

A purpose-built role is an ordinary principal to the reconciler (its row is an ``AWSRole`` whose policy is
the request's approved document instead of an S3 template); what is particular to it is decided here.
"""

import re

from .types import is_akerus

NAME_PREFIX = "akeru-req-"
NAME_MAX = 64  # IAM's limit for a role's (and its managed policy's) name
REQUEST_KEY = "akeru:request"  # tag: the id of the access request the role was built for
REQUESTER_KEY = "akeru:requester"  # tag: the requester's username (sanitised for IAM's tag values)
TAG_VALUE_MAX = 256
PROBE_SESSION_NAME = "akeru-probe"  # the RoleSessionName of the AssumeRole that checks a new role is assumable
_NOT_NAME = re.compile(r"[^A-Za-z0-9+=,.@_-]+")
_NOT_TAG_VALUE = re.compile(r"[^\w .:/=+@-]+", re.ASCII)


def role_name(request_id, base_name):
    """``akeru-req-<id>-<base name>``, cut to IAM's 64 characters: unique (the request id) and valid (the
    base is a principal's name, already IAM's characters; anything else is replaced)."""
    head = f"{NAME_PREFIX}{int(request_id)}"
    slug = _NOT_NAME.sub("-", base_name or "").strip("-")
    room = NAME_MAX - len(head) - 1
    return f"{head}-{slug[:room].rstrip('-')}" if slug and room > 0 else head


def trust_document(vending_principal):
    """The trust policy of a purpose-built role: only Akeru's vending principal may assume it, and only
    setting a SourceIdentity (Akeru always sends the person's; an identity of the trusted account assuming
    it by hand without one is refused)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AkeruVendsThisRole",
            "Effect": "Allow",
            "Principal": {"AWS": vending_principal},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Condition": {"Null": {"sts:SourceIdentity": "false"}},
        }],
    }


def tag_value(text):
    """``text`` as an IAM tag value may hold it (letters, digits, spaces and ``_ . : / = + - @``, at most 256)."""
    return _NOT_TAG_VALUE.sub("-", text or "")[:TAG_VALUE_MAX] or "-"


def request_tags(request_id, requester):
    """The tags naming the request and the requester, beside Akeru's ownership tags."""
    return ((REQUEST_KEY, str(int(request_id))), (REQUESTER_KEY, tag_value(requester)))


def built_for(tags):
    """The request id an IAM object's tags say it was built for (None: not a purpose-built role's)."""
    value = tags.get(REQUEST_KEY, "")
    return int(value) if is_akerus(tags) and value.isdigit() else None

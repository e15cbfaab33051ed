"""Why a principal is not simply ``synced``: a code beside the readable ``last_error``.

Pure (no Django, no boto3): errors carry a reason from the moment they are classified, the row
stores it, and every query or branch that needs to know *why* reads the code, never the message.
"""

from enum import StrEnum


class Reason(StrEnum):
    NONE = ""
    # transient: AWS or Akeru will get better by itself, nothing in the desired state is wrong
    CANNOT_ASSUME = "cannot-assume"
    THROTTLED = "throttled"
    AWS_UNAVAILABLE = "aws-unavailable"
    LEASE_LOST = "lease-lost"
    # caused by the desired state (or by what IAM holds): a person has to change something
    TEMPLATE_INVALID = "template-invalid"
    REFUSED = "refused"
    FOREIGN_OBJECT = "foreign-object"
    AWS_REFUSED = "aws-refused"
    HELD_FOR_REVIEW = "held-for-review"
    # access keys and drift
    ACCESS_KEY = "access-key"
    KEY_WARNING = "key-warning"
    DRIFT = "drift"
    TEARDOWN = "teardown-failed"
    UNEXPECTED = "unexpected"

    @property
    def label(self):
        return LABELS[self]

    @property
    def transient(self):
        return self in TRANSIENT


LABELS = {
    Reason.NONE: "—",
    Reason.CANNOT_ASSUME: "cannot assume the account's role",
    Reason.THROTTLED: "throttled by AWS",
    Reason.AWS_UNAVAILABLE: "AWS unavailable (5xx, connection, not yet consistent)",
    Reason.LEASE_LOST: "lease lost to another worker",
    Reason.TEMPLATE_INVALID: "template invalid or missing",
    Reason.REFUSED: "refused by a check (trust policy, name, administrator template)",
    Reason.FOREIGN_OBJECT: "IAM object not Akeru's",
    Reason.AWS_REFUSED: "refused by AWS (access denied, limit, bad request)",
    Reason.HELD_FOR_REVIEW: "held for review (upgrade from 0.0.2)",
    Reason.ACCESS_KEY: "access key problem",
    Reason.KEY_WARNING: "access key warning",
    Reason.DRIFT: "drift detected",
    Reason.TEARDOWN: "teardown failed",
    Reason.UNEXPECTED: "unexpected error",
}

# A failure for one of these leaves what IAM holds as Akeru last applied it: vending may go on.
TRANSIENT = frozenset({Reason.CANNOT_ASSUME, Reason.THROTTLED, Reason.AWS_UNAVAILABLE, Reason.LEASE_LOST})
# Caused by a change of desired state: the operator may have been narrowing access.
DESIRED_STATE = frozenset({Reason.TEMPLATE_INVALID, Reason.REFUSED, Reason.FOREIGN_OBJECT, Reason.AWS_REFUSED})

CHOICES = [(reason.value, reason.label) for reason in Reason]

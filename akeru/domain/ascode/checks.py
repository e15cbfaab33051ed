"""Validation of ``akeru/v1`` documents before anything changes: every problem at once, each with its file
and line. The caller gives what the database and the settings say (``Facts``); the rules of one principal
are ``akeru.domain.validation``'s (the model's ``clean()`` and the worker ask the same), an approval rule's
are ``akeru.domain.approvals``'. Pure: standard library and ``akeru.domain`` only."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .. import validation
from ..approvals import rule_problems
from ..lint import RULES
from ..scope import parameterised_note
from .documents import Problem
from .schema import PURPOSE_BUILT_PREFIX

# principal validation reports under the model's field names; files name them so
PRINCIPAL_FIELDS = {"name": "name", "policy": "template", "trust": "trust", "ec2": "ec2", "user": "iam_user",
                    "description": "description", "account": "account"}
THIRTY_DAYS = 30 * 86400


@dataclass
class Facts:
    """What validation needs besides the files."""

    accounts: dict = field(default_factory=dict)  # lower-case name and account id -> AccountFacts (the database's)
    principals: dict = field(default_factory=dict)  # (account name, name) lower-case -> is_iam_user (the database's)
    deleting: frozenset = frozenset()  # (account name, name) lower-case of principals being torn down
    purpose_built: frozenset = frozenset()  # (account name, name) lower-case of purpose-built roles (not in
    # ``principals``: access as code never describes them)
    templates: frozenset = frozenset()  # names the template catalog holds
    invalid_templates: frozenset = frozenset()  # of those, the ones the last refresh found invalid
    parameterised_templates: dict = field(default_factory=dict)  # of those, name -> its parameters (${bucket})
    users: frozenset = frozenset()  # usernames
    groups: frozenset = frozenset()  # group names
    rules: frozenset = frozenset()  # approval rule names, lower-case (the database's)
    now: datetime | None = None
    create_groups: bool = False  # AKERU_APPLY_CREATE_GROUPS
    context: validation.Context | None = None  # the settings' part of principal validation
    prune: bool = False  # objects absent from the files go: the files' objects are all there is


@dataclass
class Checked:
    problems: list = field(default_factory=list)  # errors and warnings, in file order
    skipped: list = field(default_factory=list)  # documents left out (waiting for a group)
    missing_groups: set = field(default_factory=set)  # groups to create empty (AKERU_APPLY_CREATE_GROUPS)

    @property
    def errors(self):
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self):
        return [p for p in self.problems if p.warning]


def check(documents, facts):
    """Check ``documents`` (in place: account references become the account's display name) against
    ``facts``; returns a ``Checked``."""
    out = Checked()
    add = out.problems.append
    accounts = known_accounts(documents, facts, add)
    for document in documents:
        if "account" in document.values:
            ref = document.values["account"]
            found = accounts.get(ref.lower())
            if found is None:
                add(document.problem(f"unknown account {ref!r} (give an account of the files or of the database: "
                                     "its display name or its 12-digit id)", "account"))
            else:
                document.values["account"] = found.name
    duplicate_problems(documents, add)
    principals = known_principals(documents, facts)
    rules = ({d.values.get("name", "").lower() for d in documents if d.kind == "ApprovalRule"}
             | (set() if facts.prune else set(facts.rules)))
    for document in documents:
        checker = CHECKS.get(document.kind)
        if checker:
            checker(document, facts, accounts, principals, rules, add)
        missing = sorted({g for g in group_refs(document) if g not in facts.groups})
        if missing:
            if facts.create_groups:
                out.missing_groups.update(missing)
                add(document.problem(f"group(s) {', '.join(missing)} not pushed by the identity provider yet: "
                                     "created empty (AKERU_APPLY_CREATE_GROUPS)", warning=True))
            else:
                out.skipped.append(document)
                add(document.problem(f"group(s) {', '.join(missing)} not pushed by the identity provider yet: "
                                     f"{document.label()} waits for them (left out of this apply; "
                                     "AKERU_APPLY_CREATE_GROUPS creates them empty)", warning=True))
    defaults = [d for d in documents if d.kind == "ApprovalRule" and d.values.get("default")]
    for document in defaults[1:]:
        add(document.problem(f"a second default approval rule (the first is at {defaults[0].where})", "default"))
    out.problems.sort(key=lambda p: (p.file, p.line))
    return out


def known_accounts(documents, facts, add):
    """lower-case name and id -> AccountFacts: the files' accounts over the database's."""
    accounts = dict(facts.accounts)  # an account is never pruned
    names = {}
    file_ids = {d.values.get("account_id") for d in documents if d.kind == "Account"}
    for document in documents:
        if document.kind != "Account" or not document.values.get("account_id"):
            continue
        v = document.values
        before = facts.accounts.get(v["account_id"])
        account = validation.AccountFacts(
            name=v.get("name", ""), account_id=v["account_id"],
            partition=v.get("partition") or (before.partition if before else "aws"),
            iam_path=v.get("iam_path") or (before.iam_path if before else "/"),
            remote_access_role=v.get("remote_access_role") or (before.remote_access_role if before else ""),
            enabled=v.get("enabled", True))
        named = names.setdefault(account.name.lower(), document)
        if named is not document and named.values["account_id"] != account.account_id:
            add(document.problem(f"account name {account.name!r} is given to {named.values['account_id']} too "
                                 f"({named.where})", "name"))
        taken = facts.accounts.get(account.name.lower())
        if taken is not None and taken.account_id != account.account_id and taken.account_id not in file_ids:
            add(document.problem(f"account name {account.name!r} is the database's {taken} (which the files do "
                                 "not rename)", "name"))
        if before is not None:  # its old name no longer names it
            accounts.pop(before.name.lower(), None)
        accounts[account.name.lower()] = account
        accounts[account.account_id] = account
    return accounts


def known_principals(documents, facts):
    """(account name, name) lower-case -> is_iam_user: the files' principals, and the database's kept."""
    principals = {} if facts.prune else dict(facts.principals)
    for document in documents:
        if document.kind == "Principal":
            v = document.values
            principals[(v.get("account", "").lower(), v.get("name", "").lower())] = bool(v.get("iam_user"))
    return principals


def duplicate_problems(documents, add):
    seen = {}
    for document in documents:
        key = document.key()
        if key in seen:
            first = seen[key]
            add(document.problem(f"{document.label()} is defined twice: here and at {first.where} "
                                 "(names are compared case-insensitively)"))
        else:
            seen[key] = document


def group_refs(document):
    v = document.values
    if document.kind == "Grant":
        return [v["group"]] if v.get("group") else []
    if document.kind == "RequestPolicy":
        return [*v.get("requester_groups", ()), *v.get("watcher_groups", ()),
                *([v["approver_group"]] if v.get("approver_group") else [])]
    if document.kind == "ApprovalRule":
        return [*v.get("required_groups", ()), *([v["escalation_group"]] if v.get("escalation_group") else [])]
    return []


def principal_ref_problem(document, principals, field_name="principal"):
    """Why the document's principal cannot be found: unknown, or in another account ('' when found)."""
    v = document.values
    account, name = v.get("account", ""), v.get(field_name, "")
    if (account.lower(), name.lower()) in principals:
        return ""
    if name.lower().startswith(PURPOSE_BUILT_PREFIX):
        return (f"{name!r} is a purpose-built role ({PURPOSE_BUILT_PREFIX}…): Akeru builds it and its grant for "
                "one request; access as code cannot refer to it")
    elsewhere = sorted(a for a, n in principals if n == name.lower())
    if elsewhere:
        return (f"principal {name!r} is not in account {account!r} (it is in {', '.join(elsewhere)}): a reference "
                "names a principal of its own account")
    return f"unknown principal {account}/{name}"


def check_account(document, facts, accounts, principals, rules, add):
    pass  # its fields are the model's (``Account.problems()``), checked by the caller


def check_principal(document, facts, accounts, principals, rules, add):
    v = document.values
    account = accounts.get(v.get("account", "").lower())
    template = v.get("template", "")
    if template and template not in facts.templates:
        add(document.problem(f"unknown template {template!r}: the template catalog does not hold it (is it in the "
                             "bucket? run akeru_templates to refresh the catalog)", "template"))
    elif template in facts.invalid_templates:
        add(document.problem(f"template {template!r} is invalid in the catalog (akeru_templates says why): the "
                             "principal will fail to sync until it is fixed", "template", warning=True))
    if v.get("name", "").lower().startswith(PURPOSE_BUILT_PREFIX):
        add(document.problem(f"name: {v.get('name')!r} is a purpose-built role's name ({PURPOSE_BUILT_PREFIX}…): "
                             "Akeru builds those for one approved request; access as code cannot define one",
                             "name"))
    parameters = facts.parameterised_templates.get(template)
    if parameters and not v.get("parameters_allowed"):
        add(document.problem(f"template: {template!r} {parameterised_note(parameters)}: set parameters_allowed: true "
                             "(a pattern for purpose-built roles) or choose a template without placeholders",
                             "template"))
    if (v.get("account", "").lower(), v.get("name", "").lower()) in facts.deleting:
        add(document.problem(f"principal {v.get('name')!r} is being torn down in IAM: apply again once its teardown "
                             "is done (its row then goes)", "name"))
    if account is None or facts.context is None:
        return
    spec = validation.PrincipalSpec(name=v.get("name", ""), template=template, is_iam_user=bool(v.get("iam_user")),
                                    ec2=bool(v.get("ec2")), aws_lambda=bool(v.get("lambda")),
                                    trust=v.get("trust") or "", description=v.get("description") or "")
    checked = validation.check_principal(spec, replace(facts.context, account=account))
    for field_name, message in checked.found:
        name = PRINCIPAL_FIELDS.get(field_name, field_name)
        add(document.problem(f"{name}: {message}", name))


def check_grant(document, facts, accounts, principals, rules, add):
    v = document.values
    if bool(v.get("user")) == bool(v.get("group")):
        add(document.problem("a grant names one user or one group (give exactly one of user and group)"))
    if v.get("user") and v["user"] not in facts.users:
        add(document.problem(f"unknown user {v['user']!r}", "user"))
    problem = principal_ref_problem(document, principals)
    if problem:
        add(document.problem(problem, "principal"))
    elif v.get("group") and principals[(v["account"].lower(), v["principal"].lower())]:
        add(document.problem(f"{v['principal']!r} is an IAM user: it can be granted only to single users, not to "
                             f"group {v['group']!r}", "group"))
    expires = v.get("expires_at")
    if expires is not None and facts.now is not None and expires <= facts.now:
        add(document.problem(f"expires_at {expires:%Y-%m-%d %H:%M:%S%z} has passed: remove the grant instead",
                             "expires_at"))


def check_request_policy(document, facts, accounts, principals, rules, add):
    v = document.values
    problem = principal_ref_problem(document, principals)
    if problem:
        add(document.problem(problem, "principal"))
    for user in v.get("requester_users", ()):
        if user not in facts.users:
            add(document.problem(f"unknown user {user!r}", "requester_users"))
    unknown = sorted(set(v.get("forbidden_findings", ())) - set(RULES))
    if unknown:
        add(document.problem(f"forbidden_findings: unknown finding code {', '.join(unknown)} (known: "
                             f"{', '.join(RULES)})", "forbidden_findings"))
    rule = v.get("approval_rule")
    if rule and rule.lower() not in rules:
        add(document.problem(f"unknown approval rule {rule!r}", "approval_rule"))
    duration = v.get("max_duration")
    if duration is not None and not 0 < duration <= THIRTY_DAYS:
        add(document.problem("max_duration: the maximum duration is positive and at most 30 days (standing access "
                             "is a grant)", "max_duration"))


def check_approval_rule(document, facts, accounts, principals, rules, add):
    v = document.values
    schedules = ",".join(v.get("oncall_schedules", ()))
    errors = rule_problems(v.get("approvals_required", 1), len(v.get("required_groups", ())),
                           seconds(v.get("remind_after")), seconds(v.get("escalate_after")),
                           bool(v.get("escalation_group")), bool(v.get("oncall_auto_approve")), schedules)
    names = {"oncall_schedules": "oncall_schedules", "escalation_group": "escalation_group"}
    for name, messages in errors.items():
        for message in messages:
            add(document.problem(f"{name}: {message}", names.get(name, name)))


def check_slack_route(document, facts, accounts, principals, rules, add):
    v = document.values
    if v.get("principal"):
        if not v.get("account"):
            add(document.problem("a route for a principal names its account too", "principal"))
            return
        problem = principal_ref_problem(document, principals)
        if problem:
            add(document.problem(problem, "principal"))


def seconds(value):
    return None if value is None else timedelta(seconds=value)


CHECKS = {"Account": check_account, "Principal": check_principal, "Grant": check_grant,
          "RequestPolicy": check_request_policy, "ApprovalRule": check_approval_rule,
          "SlackRoute": check_slack_route}

"""Principal validation, written once: every problem of one principal, all at once, by field.

The model's ``clean()`` (what an operator may save) and the worker's desired-state builder (what a
sync may apply) both ask ``check_principal``; one rule, one sentence, wherever it is found. Inputs
are plain values — the principal's fields (``PrincipalSpec``), its account (``AccountFacts``) and
what the settings and the database say around it (``Context``) — so the rules are testable without
a database, AWS or Django settings.

The worker gives what only it has (the template's text, the trust policy of the principal's kind
when it has no custom one, the session duration); a check whose input is ``None`` is skipped, so
the model's ``clean()`` validates the row alone, as it always has. Pure: standard library and
``akeru.domain`` only.
"""

import fnmatch
from dataclasses import dataclass

from akeru.domain import dedicated, policy, scope
from akeru.domain.reasons import Reason

# The fields problems are reported under: the model's field names, so ``clean()`` can raise them as
# they are ("policy" is the template, "max_session_duration" is the worker's alone).
NAME, ACCOUNT, POLICY, TRUST, DESCRIPTION, EC2, USER = "name", "account", "policy", "trust", "description", "ec2", "user"
MAX_SESSION_DURATION = "max_session_duration"


@dataclass(frozen=True)
class AccountFacts:
    """What validation needs of the principal's account (an ``Account`` row's values)."""

    name: str
    account_id: str
    partition: str = "aws"
    iam_path: str = "/"
    remote_access_role: str = ""  # the role Akeru assumes in this account
    enabled: bool = True

    def __str__(self):
        return f"{self.name} ({self.account_id})"  # as ``Account`` names itself in messages


@dataclass(frozen=True)
class PrincipalSpec:
    """What an operator says of one principal (an ``AWSRole`` row's own fields)."""

    name: str
    template: str = ""  # the template's name (``AWSRole.policy``)
    is_iam_user: bool = False
    ec2: bool = False
    aws_lambda: bool = False
    trust: str = ""  # the custom trust policy's text; blank: the default of the principal's kind
    description: str = ""
    dedicated: bool = False  # a purpose-built role (Akeru names it; its name has the reserved prefix)


@dataclass(frozen=True)
class Context:
    """Everything around the principal that its validity depends on."""

    account: AccountFacts
    remote_access_role: str = ""  # REMOTE_ACCESS_ROLE
    reserved_names: tuple = ()  # REMOTE_ACCESS_ROLE and the AKERU_RESERVED_NAMES patterns, in that order
    trusted_accounts: tuple = ()  # AKERU_TRUSTED_ACCOUNTS (resolved); the principal's account is trusted too
    trusted_organizations: tuple = ()  # AKERU_TRUSTED_ORGANIZATIONS
    same_name: str = ""  # another principal of this account whose name equals this one's but for case
    several_accounts: bool = False  # more than one account exists: a name clash says where
    # The worker's inputs; None skips the check (the model's clean() validates the row alone).
    template_text: str | None = None  # the template's body
    default_trust: str | None = None  # the trust policy text of the principal's kind, used without a custom one
    max_session_duration: int | None = None  # what roles will be given (ASSUMED_ROLE_TIMEOUT, clamped)
    refuse_admin_templates: bool = True  # unless AKERU_ALLOW_ADMIN_TEMPLATES


@dataclass(frozen=True)
class Checked:
    """What ``check_principal`` found: the problems (``[(field, message)]`` in the order they are
    reported) and the documents it rendered, for the caller that goes on to build the desired state."""

    found: tuple
    document: dict | None = None  # the rendered template (when a template text was given and parses)
    trust: dict | None = None  # the rendered trust policy (roles, when one was checked and parses)
    reason: Reason = Reason.NONE  # TEMPLATE_INVALID: the template itself is wrong; REFUSED: a check refused it

    @property
    def problems(self):
        """``{field: [message]}``: what ``ValidationError`` takes."""
        errors = {}
        for field_name, message in self.found:
            errors.setdefault(field_name, []).append(message)
        return errors

    @property
    def messages(self):
        """Every message, in order (the worker joins them into one refusal)."""
        return [message for _, message in self.found]

    def __bool__(self):
        return bool(self.found)


def reserved_name_problems(name, remote_access_role, reserved_names):
    """Why ``name`` is reserved: the remote access role, or a pattern of AKERU_RESERVED_NAMES (IAM
    names are case-insensitive)."""
    if not isinstance(name, str):
        return []
    reserved = next((p for p in reserved_names if fnmatch.fnmatchcase(name.lower(), p.lower())), None)
    if reserved is None:
        return []
    if reserved == remote_access_role:
        return [f"{name!r} is the remote access role Akeru works through (REMOTE_ACCESS_ROLE); "
                "it can never be a principal."]
    return [f"{name!r} is a reserved name (it matches {reserved!r} in AKERU_RESERVED_NAMES)."]


def dedicated_prefix_problems(name):
    """A name with the purpose-built roles' prefix is Akeru's own: an ordinary principal may not take it
    (the approval of the request it names would clash with it)."""
    if isinstance(name, str) and name.lower().startswith(dedicated.NAME_PREFIX):
        return [f"{name!r} starts with {dedicated.NAME_PREFIX!r}, which Akeru reserves for the purpose-built roles "
                "of access requests; choose another name."]
    return []


def account_reserved_problems(name, account, remote_access_role):
    """An account's own remote access role can never be a principal in that account."""
    if isinstance(name, str) and name and name.lower() == (account.remote_access_role or "").lower() \
            and name.lower() != (remote_access_role or "").lower():
        return [f"{name!r} is the remote access role Akeru works through in {account}; it can never be a principal."]
    return []


def admin_refusal(template, grants):
    """The refusal of a template granting IAM administration (``grants``: the actions that do)."""
    return (f"template {template!r} grants IAM administration ({', '.join(grants)}), which Akeru refuses unless "
            "AKERU_ALLOW_ADMIN_TEMPLATES is set")


def check_principal(spec, context):
    """Every problem of ``spec`` in ``context``, all at once (``Checked``), and the documents rendered."""
    account = context.account
    variables = {"account_id": account.account_id, "name": spec.name, "partition": account.partition}
    found = []

    def add(field_name, messages):
        found.extend((field_name, message) for message in messages)

    document = None
    template_invalid = False
    parameters = scope.placeholders(context.template_text) if context.template_text is not None else []
    if parameters:  # a pattern for purpose-built roles: IAM would get the placeholders unfilled
        template_invalid = True
        add(POLICY, [f"template {spec.template!r} {scope.parameterised_note(parameters)}"])
    elif context.template_text is not None:
        document, problems = policy.check_document_text(context.template_text, variables, f"template {spec.template!r}")
        template_invalid = bool(problems)
        add(POLICY, problems)

    custom_trust = bool(spec.trust.strip())
    if spec.ec2 and spec.aws_lambda:
        add(EC2, ["Choose EC2 or Lambda, not both."])
    if spec.is_iam_user and (spec.ec2 or spec.aws_lambda):
        add(USER, ["An IAM user cannot be an EC2 or Lambda role."])
    if spec.is_iam_user and custom_trust:
        add(TRUST, ["Trust policies cannot be applied to IAM users."])
    if custom_trust and (spec.ec2 or spec.aws_lambda):
        add(TRUST, ["Specify either a custom trust policy or EC2/Lambda, not both."])

    trust = None
    trust_text = spec.trust if custom_trust else context.default_trust
    if not spec.is_iam_user and trust_text is not None:
        trust, problems = policy.check_document_text(
            trust_text, variables, "trust policy", max_chars=policy.TRUST_POLICY_MAX_CHARS, trust=True,
        )
        add(TRUST, problems)

    add(NAME, policy.name_problems(spec.name, what="Name"))
    add(ACCOUNT, policy.path_problems(account.iam_path))
    add(DESCRIPTION, policy.description_problems(spec.description))
    duration = context.max_session_duration
    if duration is not None and not 3600 <= duration <= 43200:
        add(MAX_SESSION_DURATION, [f"MaxSessionDuration {duration}s is outside IAM's 3600–43200 seconds"])
    add(NAME, reserved_name_problems(spec.name, context.remote_access_role, context.reserved_names))
    add(NAME, account_reserved_problems(spec.name, account, context.remote_access_role))
    if not spec.dedicated:
        add(NAME, dedicated_prefix_problems(spec.name))
    if spec.name and context.same_name:
        where = f" in {account}" if context.several_accounts else ""
        add(NAME, [f"{context.same_name!r} already exists{where}; IAM names are case-insensitive, so {spec.name!r} "
                   "would be the same IAM object."])
    if not account.enabled:
        add(ACCOUNT, [f"{account} is disabled: enable it before adding or changing its principals."])

    if trust is not None:
        add(TRUST, policy.trust_lint(trust, [*context.trusted_accounts, account.account_id],
                                     trusted_organizations=list(context.trusted_organizations)))
    if document is not None and context.refuse_admin_templates:
        grants = policy.admin_grants(document)
        if grants:
            add(POLICY, [admin_refusal(spec.template, grants)])

    reason = Reason.NONE
    if found:
        reason = Reason.TEMPLATE_INVALID if template_invalid else Reason.REFUSED
    return Checked(found=tuple(found), document=document, trust=trust, reason=reason)


def principal_problems(spec, context):
    """``{field: [message]}``: every problem of ``spec`` in ``context``, all at once (empty: fine)."""
    return check_principal(spec, context).problems

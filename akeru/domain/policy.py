"""Pure helpers for IAM policy documents: parse, render, normalise, compare, check limits.

No boto3 and no Django here: the planner, the model's ``clean()`` and the template catalog all
validate through these functions, so a problem is worded the same wherever it is found.
"""

import fnmatch
import json
import re
from urllib.parse import unquote

MANAGED_POLICY_MAX_CHARS = 6144  # non-whitespace characters
TRUST_POLICY_MAX_CHARS = 2048
MAX_POLICY_VERSIONS = 5
DESCRIPTION_RE = re.compile(r"^[\t\n\r\x20-\x7e\xa1-\xff]{0,1000}\Z")
# IAM allows ASCII only (without re.ASCII, \w accepts "é"); \Z, not $, which also matches before a final "\n".
NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}\Z", re.ASCII)
# The path also goes to CreatePolicy, whose pattern is the strictest of the IAM types Akeru creates.
PATH_RE = re.compile(r"^(?:/[A-Za-z0-9.,+@=_-]+)*/\Z")
PATH_MAX = 512
VERSIONS = ("2012-10-17", "2008-10-17")
TEMPLATE_VARIABLES = ("account_id", "name", "partition")
IAM_SPECIAL_VARIABLES = ("*", "?", "$")  # ${*}, ${?}, ${$}: IAM's escapes for literal characters
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
# Statement keys whose value may be one string or a list of strings (order-free).
_SET_KEYS = {"Action", "NotAction", "Resource", "NotResource"}


class PolicyError(ValueError):
    """A document that cannot be used; the message says exactly why."""


def parse(text, what="policy"):
    """Parse a JSON policy document given as text (possibly URL-encoded, as IAM returns it)."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text.strip():
        raise PolicyError(f"{what} is empty")
    stripped = text.strip()
    if stripped.startswith("%"):  # JSON never starts with "%"; IAM's encoding may start "%7B" or "%0A"
        text = unquote(stripped)
    try:
        document = json.loads(text)  # not the stripped text: line numbers must match what the author sees
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(document, dict):
        raise PolicyError(f"{what} must be a JSON object, not {type(document).__name__}")
    return document


def render(text, variables, what="template"):
    """Substitute ``${account_id}``, ``${name}`` and ``${partition}``.

    IAM's own policy variables (``${aws:username}``, ``${s3:prefix}``…) contain a colon and are
    left for IAM to resolve; any other ``${…}`` is an error that names it.
    """
    unknown = sorted(
        {m for m in _VARIABLE_RE.findall(text)
         if ":" not in m and m not in TEMPLATE_VARIABLES and m not in IAM_SPECIAL_VARIABLES}
    )
    if unknown:
        names = ", ".join("${%s}" % u for u in unknown)
        allowed = ", ".join("${%s}" % v for v in TEMPLATE_VARIABLES)
        raise PolicyError(f"{what} uses unknown variable {names} (allowed: {allowed})")
    return _VARIABLE_RE.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), text)


def dumps(document):
    """The compact form Akeru sends to IAM (what the size limits count)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def non_whitespace_length(document):
    return sum(1 for ch in dumps(document) if not ch.isspace())


def _as_set(value):
    values = value if isinstance(value, list) else [value]
    return sorted({json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in values})


def _normalise_value(value):
    if isinstance(value, dict):
        return {k: _normalise_value(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return _as_set(value)
    return value


_ACCOUNT_ROOT_RE = re.compile(r"arn:[\w-]+:iam::(\d{12}):root", re.ASCII)


def _account_ids(value):
    """``"123456789012"`` and ``"arn:aws:iam::123456789012:root"`` name the same principal, and IAM
    stores the first as the second in trust policies: compare both as the account id."""
    values = value if isinstance(value, list) else [value]
    return [
        m.group(1) if isinstance(v, str) and (m := _ACCOUNT_ROOT_RE.fullmatch(v)) else v for v in values
    ]


def _normalise_statement(statement):
    if not isinstance(statement, dict):
        return statement
    out = {}
    for key, value in sorted(statement.items()):
        if key in _SET_KEYS:
            out[key] = _as_set(value)
        elif key in ("Principal", "NotPrincipal") and isinstance(value, dict):
            out[key] = {k: _as_set(_account_ids(v) if k == "AWS" else v) for k, v in sorted(value.items())}
        elif key == "Condition" and isinstance(value, dict):
            out[key] = {
                op: {k: _as_set(v) for k, v in sorted(body.items())} if isinstance(body, dict) else body
                for op, body in sorted(value.items())
            }
        else:
            out[key] = _normalise_value(value)
    return out


def normalise(document):
    """A canonical form: key order, whitespace, statement order and ``"a"`` vs ``["a"]`` vanish."""
    document = parse(document)
    out = {k: _normalise_value(v) for k, v in document.items() if k != "Statement"}
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    normalised = [_normalise_statement(s) for s in statements]
    out["Statement"] = sorted(normalised, key=lambda s: json.dumps(s, sort_keys=True))
    return out


def equivalent(a, b):
    """True when two documents mean the same to IAM (either may be None: equal only to None)."""
    if a is None or b is None:
        return a is None and b is None
    return normalise(a) == normalise(b)


def document_problems(document, what="policy", max_chars=MANAGED_POLICY_MAX_CHARS, trust=False):
    """Every problem of one parsed document, as readable sentences (empty list: fine)."""
    problems = []
    version = document.get("Version")
    if version is None:
        problems.append(f"{what} has no \"Version\" (use \"2012-10-17\")")
    elif version not in VERSIONS:
        problems.append(f"{what} has Version {version!r}; IAM accepts {' or '.join(VERSIONS)}")
    statements = document.get("Statement")
    if statements is None:
        problems.append(f"{what} has no \"Statement\"")
    else:
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            problems.append(f"{what} \"Statement\" must be a non-empty list of statements")
        else:
            for index, statement in enumerate(statements, 1):
                problems.extend(_statement_problems(statement, f"{what} statement {index}", trust))
    size = non_whitespace_length(document)
    if size > max_chars:
        problems.append(f"{what} is {size} non-whitespace characters; IAM allows at most {max_chars}")
    return problems


def _statement_problems(statement, where, trust):
    if not isinstance(statement, dict):
        return [f"{where} must be a JSON object"]
    problems = []
    if statement.get("Effect") not in ("Allow", "Deny"):
        problems.append(f"{where} needs \"Effect\": \"Allow\" or \"Deny\"")
    if "Action" not in statement and "NotAction" not in statement:
        problems.append(f"{where} needs \"Action\" or \"NotAction\"")
    if trust and "Principal" not in statement and "NotPrincipal" not in statement:
        problems.append(f"{where} needs a \"Principal\" (a trust policy says who may assume the role)")
    if not trust and ("Principal" in statement or "NotPrincipal" in statement):
        problems.append(f"{where} has a \"Principal\", which an identity policy must not have")
    if not trust and "Resource" not in statement and "NotResource" not in statement:
        problems.append(f"{where} needs \"Resource\" or \"NotResource\"")
    if trust and ("Resource" in statement or "NotResource" in statement):
        problems.append(f"{where} has a \"Resource\", which a trust policy must not have")
    return problems


BOUNDARY_ARN_RE = re.compile(r"arn:[\w-]+:iam::(?:\d{12}|aws):policy/[\w+=,.@/-]+", re.ASCII)
_ACCOUNT_IN_ARN_RE = re.compile(r"arn:[\w-]+:(?:iam|sts)::(\d{12}):", re.ASCII)
_ACCOUNT_RE = re.compile(r"\d{12}", re.ASCII)


def _principal_values(value):
    return value if isinstance(value, list) else [value]


# --- the trust-policy lint ------------------------------------------------------------------------
# Who a trust policy lets assume the role. IAM reads condition keys case-insensitively but refuses an
# operator spelt in another case ("Invalid Condition type"), so keys are compared lower-cased and
# operators exactly. Conditions of one statement are ANDed: one adequate restriction suffices.

_OPERATORS = {op.lower(): op for op in (
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
    "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
    "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null")}
_QUALIFIERS = {"forallvalues": "ForAllValues", "foranyvalue": "ForAnyValue"}
_STRING_MATCH = ("StringEquals", "StringEqualsIgnoreCase", "StringLike")
_CALLER_KEYS = ("aws:principalaccount", "aws:principalorgid", "aws:principalorgpaths", "aws:principalarn")
_SOURCE_KEYS = ("aws:sourceaccount", "aws:sourcearn", "aws:sourceowner", "aws:sourceorgid", "aws:sourceorgpaths")
_OIDC_PROVIDER_RE = re.compile(r"arn:[\w-]+:iam::\d{12}:oidc-provider/(\S+)", re.ASCII)
_SAML_PROVIDER_RE = re.compile(r"arn:[\w-]+:iam::\d{12}:saml-provider/[\w.-]+", re.ASCII)
# Identity providers IAM knows by name. It checks the audience of an OIDC provider's tokens against the
# provider's client ids, but not of these: the key naming the application is required.
NAMED_IDENTITY_PROVIDERS = {
    "cognito-identity.amazonaws.com": "cognito-identity.amazonaws.com:aud",  # the identity pool id
    "accounts.google.com": "accounts.google.com:aud",
    "graph.facebook.com": "graph.facebook.com:app_id",
    "www.amazon.com": "www.amazon.com:app_id",
}
# arn:PARTITION:iam|sts::ACCOUNT: with no wildcard up to and including the account
_PRINCIPAL_ARN_RE = re.compile(r"arn:[^:*?]+:(?:iam|sts)::(\d{12}):", re.ASCII)
_SOURCE_ARN_RE = re.compile(r"arn:[^:]*:[^:]*:[^:]*:([^:]*):", re.ASCII)
_WILDCARDS = ("*", "?")
# An organization id, or a path in one (as aws:PrincipalOrgPaths holds it: o-…/r-…/ou-…/…/).
ORGANIZATION_RE = re.compile(
    r"o-[a-z0-9]{10,32}(?:/r-[0-9a-z]{4,32}(?:/ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})*)?/?", re.ASCII)


def _text(value):
    return value if isinstance(value, str) else json.dumps(value)


def _conditions(statement):
    """The statement's conditions as ``(operator, key, lower-cased key, [values])``."""
    entries = []
    block = statement.get("Condition")
    for operator, body in (block.items() if isinstance(block, dict) else ()):
        for key, value in (body.items() if isinstance(body, dict) else ()):
            entries.append((operator, key, str(key).lower(), [_text(v) for v in _principal_values(value)]))
    return entries


def _spelling(operator):
    """IAM's own spelling of ``operator``, or None when it is no IAM condition operator."""
    qualifier, _, base = operator.rpartition(":")
    exists = base.lower().endswith("ifexists")
    core = _OPERATORS.get((base[:-len("ifexists")] if exists else base).lower())
    if core is None or (qualifier and qualifier.lower() not in _QUALIFIERS):
        return None
    return (f"{_QUALIFIERS[qualifier.lower()]}:" if qualifier else "") + core + ("IfExists" if exists else "")


def _operator_problem(operator, single_valued=True):
    """Why ``operator`` cannot restrict who comes, or None when it is a plain positive comparison (with
    ``ForAnyValue:`` for a multivalued key)."""
    spelt = _spelling(operator)
    if spelt is None:
        return f"{operator!r} is not an IAM condition operator"
    if spelt != operator:
        return f"IAM refuses the operator {operator!r} (operator names are case-sensitive: write {spelt!r})"
    qualifier, _, base = operator.rpartition(":")
    if base.endswith("IfExists") or qualifier == "ForAllValues":
        return f"{operator} is true when the key is absent"
    if base == "Null":
        return "Null only tests whether the key is present"
    if "Not" in base:
        return f"{operator} lets in every value it does not name"
    if single_valued and qualifier:
        return f"{qualifier}: does not belong on a single-valued key (write {base})"
    if not single_valued and not qualifier:
        return f"{operator} on a multivalued key needs ForAnyValue: (write ForAnyValue:{base})"
    return None


def _caller_restriction(operator, key, values, accounts, organizations):
    """Why one condition does not keep a ``"*"`` principal to trusted callers (None: it does)."""
    name = f"{operator} {key!r}"
    if key.lower() in _SOURCE_KEYS:
        return (f"{key} is set only when an AWS service calls on a resource's behalf, so it restricts only a "
                "Service principal, not \"*\"")
    if key.lower() not in _CALLER_KEYS:
        return f"{key} says nothing about who the caller is"
    problem = _operator_problem(operator, single_valued=key.lower() != "aws:principalorgpaths")
    if problem:
        return problem
    base = operator.rpartition(":")[2]
    if key.lower() == "aws:principalarn":
        if base not in _STRING_MATCH + ("ArnEquals", "ArnLike"):
            return f"{name} does not compare ARNs (use ArnLike)"
        bad = [v for v in values if not ((m := _PRINCIPAL_ARN_RE.match(v)) and m.group(1) in accounts)]
        return f"{name} names {', '.join(map(repr, bad))}, not principals of trusted accounts" if bad else None
    if base not in _STRING_MATCH:
        return f"{name} does not compare strings (use StringEquals)"
    if key.lower() == "aws:principalorgpaths":
        prefixes = [o.rstrip("/") + "/" for o in organizations]
        bad = [v for v in values if not any(v.startswith(p) for p in prefixes)]
        return (f"{name} names {', '.join(map(repr, bad))}, not under an organization or path of "
                "AKERU_TRUSTED_ORGANIZATIONS") if bad else None
    if base == "StringLike" and any(w in v for v in values for w in _WILDCARDS):
        return f"{name} matches by pattern (name each value)"
    if key.lower() == "aws:principalaccount":
        bad = [v for v in values if v not in accounts]
        return f"{name} names {', '.join(bad)}, outside the trusted accounts" if bad else None
    org_ids = {o.rstrip("/") for o in organizations if "/" not in o.rstrip("/")}
    bad = [v for v in values if v not in org_ids]
    return f"{name} names {', '.join(bad)}, not organizations of AKERU_TRUSTED_ORGANIZATIONS" if bad else None


def _claim_restriction(operator, key, values):
    """Why a condition on a token's or assertion's claim does not name who may come (None: it does)."""
    problem = _operator_problem(operator)
    if problem:
        return problem
    if operator not in _STRING_MATCH:
        return f"{operator} {key!r} does not compare strings (use StringEquals or StringLike)"
    loose = [v for v in values if v and set(v) <= set(_WILDCARDS)]
    if loose and operator == "StringLike":
        return f"StringLike {key!r} value {', '.join(map(repr, loose))} matches anyone"
    if loose:
        return (f"{operator} {key!r} value {', '.join(map(repr, loose))} is taken literally, not as a wildcard "
                "(name the subjects)")
    return None


def _requirement(entries, wanted, judge):
    """None when one condition on a ``wanted`` key passes ``judge``; else the reasons none does."""
    reasons = []
    for operator, key, lower, values in entries:
        if lower in wanted:
            reason = judge(operator, key, values)
            if reason is None:
                return None
            reasons.append(reason)
    return reasons


def _because(reasons):
    return f" ({'; '.join(reasons)})" if reasons else ""


def trust_lint(document, trusted_accounts, what="trust policy", trusted_organizations=()):
    """Who a trust policy lets in that Akeru refuses, every problem at once.

    - ``"*"`` or ``{"AWS": "*"}`` unless a Condition keeps callers to trusted accounts: ``StringEquals`` on
      ``aws:PrincipalAccount`` (values in ``trusted_accounts``) or ``aws:PrincipalOrgID`` (an organization of
      ``trusted_organizations``), ``ForAnyValue:StringLike`` on ``aws:PrincipalOrgPaths`` (under one), or
      ``ArnLike`` on ``aws:PrincipalArn`` (ARNs of trusted accounts);
    - an AWS principal of an account outside ``trusted_accounts``; an Allow with ``NotPrincipal``;
    - a Service principal whose ``aws:SourceAccount``/``aws:SourceArn`` names an untrusted account;
    - a Federated principal without a condition naming who may come: ``<provider>:sub`` for an OIDC
      provider, ``SAML:aud`` for a SAML provider, the application key of a named provider.
    """
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return []
    trusted = sorted({str(a) for a in trusted_accounts})
    organizations = sorted({str(o).strip() for o in trusted_organizations if str(o).strip()})
    allowed = ", ".join(trusted) or "none"
    problems = []
    for index, statement in enumerate(statements, 1):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        where = f"{what} statement {index}"
        if "NotPrincipal" in statement:
            problems.append(f"{where} allows everyone except its NotPrincipal; name the principals instead")
            continue
        principal = statement.get("Principal")
        entries = _conditions(statement)
        problems += _misspelt_operators(entries, where)
        aws = [principal] if principal == "*" else (
            _principal_values(principal.get("AWS", [])) if isinstance(principal, dict) else [])
        if "*" in aws:
            reasons = _requirement(
                entries, {e[2] for e in entries},
                lambda op, key, values: _caller_restriction(op, key, values, trusted, organizations))
            if reasons is not None:
                problems.append(
                    f"{where} lets anyone assume the role (principal \"*\") without a Condition"
                    + (f" that keeps callers to trusted accounts{_because(reasons)}" if reasons else "")
                    + f"; keep callers to trusted accounts with \"StringEquals\" on \"aws:PrincipalAccount\" "
                    f"(trusted: {allowed}) or on \"aws:PrincipalOrgID\" (AKERU_TRUSTED_ORGANIZATIONS: "
                    f"{', '.join(organizations) or 'none'}), or \"ForAnyValue:StringLike\" on "
                    f"\"aws:PrincipalOrgPaths\", or name the accounts in the Principal")
        for value in aws:
            if not isinstance(value, str) or value == "*":
                continue
            match = _ACCOUNT_IN_ARN_RE.match(value) or _ACCOUNT_RE.fullmatch(value)
            account = match.group(1) if match and match.groups() else (match.group(0) if match else None)
            if account is None:
                problems.append(f"{where} names AWS principal {value!r}, which is not an account id or an IAM ARN")
            elif account not in trusted:
                problems.append(f"{where} trusts AWS account {account}, which is not in AKERU_TRUSTED_ACCOUNTS "
                                f"({allowed})")
        if isinstance(principal, dict):
            if principal.get("Service"):
                problems += _source_problems(entries, where, trusted, allowed)
            for value in _principal_values(principal.get("Federated", [])):
                problems += _federated_problems(value, entries, where)
    return problems


def _misspelt_operators(entries, where):
    found = sorted({op for op, _, _, _ in entries if (spelt := _spelling(op)) and spelt != op})
    return [f"{where}: {_operator_problem(op)}" for op in found]


def _source_problems(entries, where, trusted, allowed):
    """A Service principal acting for another account's resources is that account's way in."""
    problems = []
    for operator, key, lower, values in entries:
        if lower not in ("aws:sourceaccount", "aws:sourcearn") or _operator_problem(operator):
            continue
        if lower == "aws:sourceaccount":
            accounts = values
        else:
            accounts = [m.group(1) for v in values if (m := _SOURCE_ARN_RE.match(v)) and m.group(1)]
        for account in sorted(set(accounts) - set(trusted)):
            problems.append(f"{where} lets the service act for resources of account {account} ({key}), which is "
                            f"not in AKERU_TRUSTED_ACCOUNTS ({allowed}); name a trusted account")
    return problems


def _federated_problems(value, entries, where):
    if not isinstance(value, str):
        return [f"{where} has a Federated principal {value!r} that is not a string"]
    if match := _OIDC_PROVIDER_RE.fullmatch(value):
        key = f"{match.group(1)}:sub"
        who = f"anyone with a token of OIDC provider {match.group(1)}"
        fix = f"add \"StringEquals\" or \"StringLike\" on \"{key}\" naming the subjects allowed"
    elif _SAML_PROVIDER_RE.fullmatch(value):
        key, who = "SAML:aud", f"any assertion of SAML provider {value.rsplit('/', 1)[1]}"
        fix = "add \"StringEquals\": {\"SAML:aud\": \"https://signin.aws.amazon.com/saml\"} (your sign-in endpoint)"
    elif value.lower() in NAMED_IDENTITY_PROVIDERS:
        key = NAMED_IDENTITY_PROVIDERS[value.lower()]
        who = f"anyone signed in to {value} through any application"
        fix = f"add \"StringEquals\" on \"{key}\" naming your application (IAM does not check it for {value})"
    else:
        known = ", ".join(NAMED_IDENTITY_PROVIDERS)
        return [f"{where} names Federated principal {value!r}, which is neither the ARN of an OIDC or SAML provider "
                f"(arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST or …:saml-provider/NAME) nor one of {known}"]
    reasons = _requirement(entries, {key.lower()}, _claim_restriction)
    if reasons is None:
        return []
    return [f"{where} lets {who} assume the role without a Condition on {key!r}{_because(reasons)}; {fix}"]


# Allowed by any of these, a principal can grant itself anything: what "administrator" means here.
_ADMIN_PROBES = ("iam:createpolicyversion", "iam:attachrolepolicy", "iam:putrolepolicy", "iam:attachuserpolicy",
                 "iam:putuserpolicy", "iam:createaccesskey", "iam:updateassumerolepolicy", "iam:passrole",
                 "iam:createrole", "iam:createuser")


def admin_grants(document):
    """The actions of a policy's Allow statements that grant IAM administration (``"*"``, ``iam:*``,
    any wildcard covering an IAM write that escalates privileges, or an Allow with ``NotAction``)."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    found = []
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            excluded = [a.lower() for a in _principal_values(statement["NotAction"]) if isinstance(a, str)]
            if not any(fnmatch.fnmatchcase(probe, pattern) for probe in _ADMIN_PROBES for pattern in excluded):
                found.append("NotAction " + json.dumps(statement["NotAction"]))
            continue
        for action in _principal_values(statement.get("Action", [])):
            if isinstance(action, str) and "*" in action and any(
                    fnmatch.fnmatchcase(probe, action.lower()) for probe in _ADMIN_PROBES):
                found.append(action)
    return sorted(set(found))


def description_problems(description):
    if not DESCRIPTION_RE.match(description):
        return ["description must be at most 1000 characters of printable Latin-1 text (IAM refuses others)"]
    return []


def name_problems(name, what="name"):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return [
            f"{what} {name!r} is not a valid IAM name: 1–64 characters of letters, digits and + = , . @ _ -"
        ]
    return []


def path_problems(path):
    if not isinstance(path, str) or len(path) > PATH_MAX or not PATH_RE.fullmatch(path):
        return [
            f"IAM path {path!r} must start and end with '/', with segments of letters, digits and"
            f" . , + @ = _ - between, at most {PATH_MAX} characters"
        ]
    return []


def check_document_text(text, variables, what, max_chars=MANAGED_POLICY_MAX_CHARS, trust=False):
    """Render and parse a document; return ``(document or None, problems)``."""
    try:
        document = parse(render(text, variables, what=what), what=what)
    except PolicyError as exc:
        return None, [str(exc)]
    return document, document_problems(document, what=what, max_chars=max_chars, trust=trust)

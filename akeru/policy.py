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


def trust_lint(document, trusted_accounts, what="trust policy"):
    """Who a trust policy lets in that Akeru refuses: anyone (``"*"``, ``{"AWS": "*"}``, an Allow with
    ``NotPrincipal``) without a Condition, or an AWS account outside ``trusted_accounts``."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return []
    trusted = sorted({str(a) for a in trusted_accounts})
    allowed = ", ".join(trusted) or "none"
    problems = []
    for index, statement in enumerate(statements, 1):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        where = f"{what} statement {index}"
        conditioned = bool(statement.get("Condition"))
        if "NotPrincipal" in statement:
            problems.append(f"{where} allows everyone except its NotPrincipal; name the principals instead")
            continue
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and "*" in _principal_values(principal.get("AWS", [])))
        if everyone and not conditioned:
            problems.append(f"{where} lets anyone assume the role (principal \"*\") without a Condition")
        if not isinstance(principal, dict):
            continue
        for value in _principal_values(principal.get("AWS", [])):
            if not isinstance(value, str) or value == "*":
                continue
            match = _ACCOUNT_IN_ARN_RE.match(value) or _ACCOUNT_RE.fullmatch(value)
            account = match.group(1) if match and match.groups() else (match.group(0) if match else None)
            if account is None:
                problems.append(f"{where} names AWS principal {value!r}, which is not an account id or an IAM ARN")
            elif account not in trusted:
                problems.append(f"{where} trusts AWS account {account}, which is not in AKERU_TRUSTED_ACCOUNTS "
                                f"({allowed})")
    return problems


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

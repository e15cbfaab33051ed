"""Scoped requests: the exact policy a narrowed or purpose-built request is vended under. Pure: the
template's text and what the requester asked (actions, resources, parameters) in, a policy document out,
or a ``ScopeError`` listing every problem at once, each naming the action, resource or parameter.

- A *narrowing* is a subset of the template: every requested action is allowed by some Allow statement of
  the template whose resources match every requested resource given for it (requested wildcards are taken
  literally, so ``data/*`` fits under ``data/*`` or ``*`` but ``d*`` does not fit under ``data*``). It is
  vended as a session policy: AWS intersects it with the principal's standing policy.
- A *purpose-built* policy is the template with its ``${name}`` parameters filled in (and optionally
  narrowed, keeping every Deny statement of the template: the role holds only this document, so no
  standing policy would add them back), or the actions and resources written out.
- Parameters fill ``${name}`` placeholders; a value that would widen the policy (``*``, ``?``), inject ARN
  syntax (``:``, quotes, ``$``, braces, spaces) or is empty is refused.
- Size: a session policy is at most 2,048 characters of policy text without whitespace (AWS also limits
  the *packed* size, reported as PackedPolicyTooLarge, which depends on AWS's compression: Akeru checks
  the plain length only); a purpose-built role's policy at most IAM's managed-policy size, 6,144."""

import fnmatch
import json
import re
from dataclasses import dataclass, field

from . import iam_catalog, policy

SESSION_POLICY_MAX_CHARS = 2048
DEDICATED_POLICY_MAX_CHARS = policy.MANAGED_POLICY_MAX_CHARS
MAX_ITEMS = 50  # actions, resources or parameters one request may name
MAX_ITEM_CHARS = 2048  # an ARN's longest
PARAMETER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
PARAMETER_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@/-]{0,254}\Z")
_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")
NARROWED, DEDICATED = "narrowed", "dedicated"


class ScopeError(ValueError):
    """A scope that cannot be granted; ``problems`` says every reason, ``too_large`` that the narrowing
    is right but does not fit in a session policy (a purpose-built role may hold it)."""

    def __init__(self, problems, too_large=False):
        self.problems = list(problems)
        self.too_large = too_large
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Request:
    """What a person asked for."""

    actions: tuple = ()
    resources: tuple = ()
    parameters: dict = field(default_factory=dict)

    def as_dict(self):
        return {"actions": list(self.actions), "resources": list(self.resources),
                "parameters": dict(self.parameters)}


def _strings(value, what):
    if value in (None, ""):
        return [], []
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value) if v]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return [], [f"{what} must be a list of strings"]
    items = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    long = [v[:40] + "…" for v in items if len(v) > MAX_ITEM_CHARS]
    if long:
        return items, [f"{what} are at most {MAX_ITEM_CHARS} characters each ({', '.join(long)} is longer)"]
    if len(items) > MAX_ITEMS:
        return items, [f"at most {MAX_ITEMS} {what} per request ({len(items)} given)"]
    return items, []


def parse_parameters(value):
    """``{"bucket": "data"}`` from a dict, or from ``["bucket=data", …]`` / ``"bucket=data …"``."""
    if value in (None, "", [], {}):
        return {}, []
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        items, problems = _strings(value, "parameters")
        if problems:
            return {}, problems
        pairs = []
        for item in items:
            name, sep, given = item.partition("=")
            if not sep:
                problems.append(f"parameter {item!r} is not NAME=VALUE")
            pairs.append((name.strip(), given.strip()))
        if problems:
            return {}, problems
    return {str(k): v for k, v in pairs}, []


def request(actions=None, resources=None, parameters=None):
    """A ``Request`` from what a form, the API or the command line gave; ``ScopeError`` if malformed."""
    actions, problems = _strings(actions, "actions")
    resources, more = _strings(resources, "resources")
    parameters, most = parse_parameters(parameters)
    problems += more + most
    if problems:
        raise ScopeError(problems)
    return Request(tuple(actions), tuple(resources), parameters)


def placeholders(text):
    """The requester-filled ``${name}`` placeholders of a template text (not Akeru's own variables, not
    IAM's ``${aws:…}`` ones, not IAM's ``${*}`` escapes), in order of appearance."""
    return list(dict.fromkeys(
        m for m in _VARIABLE_RE.findall(text or "")
        if PARAMETER_NAME_RE.match(m) and m not in policy.TEMPLATE_VARIABLES and m not in policy.IAM_SPECIAL_VARIABLES))


SAMPLE_VALUE = "example-value"  # what the catalog fills a placeholder with to check the rest of a template


def parameterised_note(names):
    """What the catalog, the admin and the sync say of a template taking ``names`` as parameters."""
    shown = ", ".join("${%s}" % n for n in names)
    return (f"takes parameters ({shown}): it is requestable only as a purpose-built role, of a principal marked "
            f"requestable with parameters; no standing role can hold it (IAM has no value for {shown})")


def with_samples(text):
    """``text`` with every requester placeholder filled with ``SAMPLE_VALUE`` (IAM's ``${aws:…}`` variables and
    Akeru's own left as they are): to check the rest of a parameterised template."""
    wanted = set(placeholders(text))
    return _VARIABLE_RE.sub(lambda m: SAMPLE_VALUE if m.group(1) in wanted else m.group(0), text)


def parameter_problems(name, value):
    if not PARAMETER_NAME_RE.fullmatch(name or ""):
        return [f"parameter name {name!r} must be letters, digits and _ (starting with a letter)"]
    if not isinstance(value, str) or not value.strip():
        return [f"parameter {name!r} is empty: give its value"]
    if "*" in value or "?" in value:
        return [f"parameter {name!r} = {value!r} would widen the policy: wildcards (* ?) are not allowed"]
    if not PARAMETER_VALUE_RE.fullmatch(value):
        return [f"parameter {name!r} = {value!r} is refused: use letters, digits and . _ + = @ / - only "
                "(no ARN syntax such as ':', quotes, '$', braces or spaces)"]
    return []


def fill(text, parameters, allowed=True):
    """The template text with its placeholders filled; every placeholder needs a value and every value
    a placeholder."""
    wanted = placeholders(text)
    problems = []
    if parameters and not allowed:
        raise ScopeError(["this principal's template does not take parameters"])
    for name in wanted:
        if name not in parameters:
            problems.append(f"parameter {name!r} is missing (the template needs {', '.join(wanted)})")
    for name, value in parameters.items():
        if name not in wanted:
            problems.append(f"parameter {name!r} is not one of the template's "
                            f"({', '.join(wanted) or 'it has none'})")
        else:
            problems += parameter_problems(name, value)
    if problems:
        raise ScopeError(problems)
    return _VARIABLE_RE.sub(lambda m: parameters.get(m.group(1), m.group(0)), text)


def document_from(text, variables, parameters=None, parameters_allowed=False):
    """The template's document: parameters filled, then Akeru's own variables rendered."""
    filled = fill(text, parameters or {}, allowed=parameters_allowed)
    try:
        return policy.parse(policy.render(filled, variables), what="template")
    except policy.PolicyError as exc:
        raise ScopeError([str(exc)]) from None


def _allow_statements(document):
    for index, statement in enumerate(policy_statements(document)):
        if statement.get("Effect") == "Allow" and "Action" in statement:
            yield index, statement


def _deny_statements(document):
    return [s for s in policy_statements(document) if s.get("Effect") == "Deny"]


def policy_statements(document):
    found = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(found, dict):
        found = [found]
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def _values(value):
    return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]


def _action_problems(action):
    service, _, name = action.partition(":")
    if not name:
        return [f"{action!r} is not an action (SERVICE:ACTION, e.g. s3:GetObject)"]
    if iam_catalog.service(service) is None:
        return [f"action {action!r}: AWS has no service {service!r}"]
    if not iam_catalog.expand(action):
        return [f"action {action!r} does not exist in {iam_catalog.service(service).name}"]
    return []


def within(pattern, template):
    """Whether every text ``pattern`` matches is matched by ``template`` (both IAM wildcards: ``*`` any
    text, ``?`` one character). A ``*`` of the pattern fits only under a ``*`` of the template, a ``?`` under a
    ``?`` or a ``*``: ``data/*`` is within ``data/*`` and ``*``, never within ``data/?`` (which ``fnmatch``
    alone would say)."""
    # fits[j]: the pattern's rest from i fits under the template's rest from j (computed from the end)
    n, m = len(pattern), len(template)
    after = [False] * m + [True]  # i == n: only an all-"*" template rest fits the empty rest
    for j in range(m - 1, -1, -1):
        after[j] = template[j] == "*" and after[j + 1]
    for i in range(n - 1, -1, -1):
        fits = [False] * (m + 1)
        for j in range(m - 1, -1, -1):
            if template[j] == "*":
                fits[j] = fits[j + 1] or after[j]
            elif pattern[i] != "*" and (template[j] == "?" or pattern[i] == template[j]):
                fits[j] = after[j + 1]
        after = fits
    return after[0]


def _covered(action, patterns):
    """Whether every action ``action`` (perhaps a wildcard) stands for is matched by one of ``patterns``."""
    patterns = [p.lower() for p in patterns]
    if any(within(action.lower(), p) for p in patterns):
        return True
    expanded = iam_catalog.expand(action)
    return bool(expanded) and all(any(fnmatch.fnmatchcase(a.full.lower(), p) for p in patterns) for a in expanded)


def _resource_covered(resource, patterns):
    return any(within(resource, p) for p in patterns)


def narrow(document, scope):
    """The subset of ``document`` that ``scope`` asks for, as a policy document; ``ScopeError`` naming
    every action or resource the template does not allow. Each requested action keeps the ``Condition`` of
    the template statement that allows it (a purpose-built role's policy must not lose one)."""
    if not scope.actions:
        raise ScopeError(["name at least one action to narrow to"])
    problems = [p for action in scope.actions for p in _action_problems(action)]
    if problems:
        raise ScopeError(problems)
    statements = [s for _, s in _allow_statements(document)]
    granted = {}  # (resources, condition) -> actions
    used = set()
    for action in scope.actions:
        allowing = [s for s in statements if _covered(action, _values(s.get("Action")))]
        if not allowing:
            problems.append(f"action {action} is not allowed by the principal's template")
            continue
        fitted = False
        for statement in allowing:
            own = _values(statement.get("Resource"))
            fits = [r for r in scope.resources if _resource_covered(r, own)] if scope.resources else own
            if not fits:
                continue
            fitted = True
            used.update(fits)
            condition = json.dumps(statement["Condition"], sort_keys=True) if statement.get("Condition") else ""
            granted.setdefault((tuple(sorted(set(fits))), condition), []).append(action)
        if not fitted:
            problems.append(f"action {action} is not allowed by the template on any of the requested resources "
                            f"({', '.join(scope.resources)})")
    for resource in scope.resources:
        if resource not in used and not problems:
            problems.append(f"resource {resource} is not allowed by the template for any requested action")
    if problems:
        raise ScopeError(problems)
    return _document(granted)


def written_out(scope):
    """A purpose-built policy from actions and resources written out (each action on every resource)."""
    problems = [p for action in scope.actions for p in _action_problems(action)]
    if not scope.actions:
        problems.append("name at least one action for the purpose-built role")
    if not scope.resources:
        problems.append("name the resources (ARNs) the purpose-built role's actions apply to")
    if problems:
        raise ScopeError(problems)
    return _document({(tuple(sorted(set(scope.resources))), ""): list(scope.actions)})


def _document(granted):
    """One statement per set of resources and condition, actions sorted (a stable, comparable text)."""
    statements = []
    rows = sorted(((sorted(set(actions)), resources, condition) for (resources, condition), actions
                   in granted.items()), key=lambda row: (row[0], row[1], row[2]))
    for index, (actions, resources, condition) in enumerate(rows):
        statement = {"Sid": f"Scoped{index + 1}", "Effect": "Allow", "Action": actions,
                     "Resource": list(resources) if len(resources) > 1 else resources[0]}
        if condition:
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def text(document):
    """The exact policy text Akeru sends (compact; what the size limits count)."""
    return policy.dumps(document)


def size_problems(document, mode):
    limit = SESSION_POLICY_MAX_CHARS if mode == NARROWED else DEDICATED_POLICY_MAX_CHARS
    length = policy.non_whitespace_length(document)
    if length <= limit:
        return []
    what = "a session policy" if mode == NARROWED else "an IAM managed policy"
    return [f"the scoped policy is {length} characters without whitespace; {what} holds at most {limit}"]


def build(template_text, variables, mode, scope, parameters_allowed=False):
    """The policy document of a scoped request: narrowed from the template, or purpose-built from it (with
    parameters) or from the actions and resources written out. ``ScopeError`` (``too_large`` when only
    the size is wrong) otherwise."""
    if mode not in (NARROWED, DEDICATED):
        raise ScopeError([f"unknown scope {mode!r} (narrowed or dedicated)"])
    if mode == DEDICATED and not scope.parameters and scope.actions and scope.resources and not parameters_allowed:
        document = written_out(scope)
    else:
        if template_text is None:
            raise ScopeError(["the principal's template is not known to Akeru yet (the catalog has not read "
                              "it); try again after the next template refresh"])
        if mode == NARROWED and scope.parameters and not parameters_allowed:
            raise ScopeError(["this principal's template does not take parameters"])
        if mode == DEDICATED and not parameters_allowed and not (scope.actions and scope.resources):
            raise ScopeError(["a purpose-built role needs a template requestable with parameters, or the actions "
                              "and resources written out"])
        document = document_from(template_text, variables, scope.parameters, parameters_allowed)
        if scope.actions or mode == NARROWED:
            denies = _deny_statements(document) if mode == DEDICATED else []
            document = narrow(document, scope)
            document["Statement"] += denies
    problems = size_problems(document, mode)
    if problems:
        raise ScopeError(problems, too_large=True)
    return document


@dataclass(frozen=True)
class Diff:
    """What a scoped policy keeps of the standing one, for approvers: each standing action or resource
    pattern kept whole, narrowed (to the scoped items it covers) or removed; scoped items the standing
    policy does not have are added (a purpose-built role's own)."""

    kept: list = field(default_factory=list)  # [(kind, pattern)]
    narrowed: list = field(default_factory=list)  # [(kind, pattern, [scoped items])]
    removed: list = field(default_factory=list)  # [(kind, pattern)]
    added: list = field(default_factory=list)  # [(kind, item)]

    def as_dict(self):
        return {"kept": [list(x) for x in self.kept], "narrowed": [[k, p, list(i)] for k, p, i in self.narrowed],
                "removed": [list(x) for x in self.removed], "added": [list(x) for x in self.added]}


def _allowed_items(document, key):
    return list(dict.fromkeys(v for _, s in _allow_statements(document) for v in _values(s.get(key))))


def diff(standing, scoped):
    """The ``Diff`` of a scoped document against the principal's standing document."""
    result = Diff()
    for kind, key in (("action", "Action"), ("resource", "Resource")):
        before, after = _allowed_items(standing, key), _allowed_items(scoped, key)
        fold = str.lower if kind == "action" else str
        for pattern in before:
            inside = [item for item in after if fnmatch.fnmatchcase(fold(item), fold(pattern))]
            if not inside:
                result.removed.append((kind, pattern))
            elif inside == [pattern] or pattern in after:
                result.kept.append((kind, pattern))
            else:
                result.narrowed.append((kind, pattern, inside))
        for item in after:
            if not any(fnmatch.fnmatchcase(fold(item), fold(p)) for p in before):
                result.added.append((kind, item))
    return result


def pretty(policy_text):
    """The policy text as approvers read it (indented)."""
    try:
        return json.dumps(json.loads(policy_text), indent=2)
    except (TypeError, ValueError):
        return policy_text or ""

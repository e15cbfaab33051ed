"""Scoped requests: a narrowing of a principal (vended as a session policy) or a purpose-built role. What
``akeru.services.requests`` calls when a person asks and when an approver decides (docs/access.md "Scoped
requests").

The template is read from the catalog (``PolicyTemplate.body``, which the workers keep): a web request never
reads S3. The policy is built by ``akeru.domain.scope`` and checked by ``akeru.domain.lint``; a finding the
principal's request policy forbids, or a finding of error severity (an action or service AWS does not have,
a malformed ARN, another partition or account), refuses the request. Everything is checked again at
approval: the template or the request policy may have changed since."""

import json
from dataclasses import dataclass, field

from ..domain import lint
from ..domain import scope as scoping
from ..metrics.instruments import SCOPED_REQUESTS
from ..models import PolicyTemplate, ScopeMode

MODES = (ScopeMode.NARROWED, ScopeMode.DEDICATED)


class ScopeRefused(Exception):
    """The scope cannot be granted; ``messages`` say why, for the person."""

    def __init__(self, messages):
        self.messages = list(messages)
        super().__init__(" ".join(self.messages))


@dataclass
class Scoped:
    """What a scoped request stores: its mode, what was asked, the exact policy text and the findings."""

    mode: str = ScopeMode.STANDING
    scope: dict = field(default_factory=dict)
    policy: str = ""
    findings: list = field(default_factory=list)

    def fields(self):
        return {"scope_mode": self.mode, "scope": self.scope, "scope_policy": self.policy, "findings": self.findings}


def template_text(principal):
    """The principal's template as the catalog last read it, or None when the catalog has not read it."""
    body = (PolicyTemplate.objects.filter(name=principal.policy, present=True).values_list("body", flat=True)
            .first())
    return body or None


def standing_document(principal, text=None):
    """The principal's standing policy (its template rendered), or None when it is not known or needs
    parameters."""
    text = text if text is not None else template_text(principal)
    if text is None or scoping.placeholders(text):
        return None
    try:
        return scoping.document_from(text, principal.template_variables())
    except scoping.ScopeError:
        return None


def wanted(scope):
    """Whether ``scope`` (a dict from a form, the API or the command line) asks for anything."""
    return bool(scope) and any(scope.get(k) for k in ("mode", "actions", "resources", "parameters"))


def _mode(scope):
    mode = (scope.get("mode") or "").strip()
    if not mode:
        return ScopeMode.DEDICATED if scope.get("parameters") else ScopeMode.NARROWED
    return mode


def prepare(principal, policy, scope):
    """The ``Scoped`` of a request for ``principal`` under its request ``policy`` asking ``scope``
    (``{"mode", "actions", "resources", "parameters"}``); ``Scoped()`` when it asks for nothing scoped.
    ``ScopeRefused`` with every reason otherwise (counted)."""
    if not wanted(scope):
        return Scoped()
    mode = _mode(scope)
    try:
        return _prepare(principal, policy, mode, scope)
    except ScopeRefused:
        SCOPED_REQUESTS.labels(mode if mode in MODES else "unknown", "refused").inc()
        raise


def trial(principal, policy, scope):
    """What ``prepare`` would answer for ``scope`` (which asks for something), without counting it: the
    ``Scoped``, or ``ScopeRefused`` with every reason. For offering a request (a denied call's suggestion)
    only where it would be accepted."""
    return _prepare(principal, policy, _mode(scope), scope)


def _prepare(principal, policy, mode, scope):
    name = principal.name
    if mode not in MODES:
        raise ScopeRefused([f"{mode!r} is not a scope: ask for narrowed (a subset of {name}) or dedicated "
                            "(a purpose-built role)."])
    if mode == ScopeMode.NARROWED and not (policy and policy.narrowing_allowed):
        raise ScopeRefused([f"{name} cannot be requested narrowed: its request policy does not allow it. Ask "
                            "for the whole principal."])
    if mode == ScopeMode.DEDICATED and not (policy and policy.dedicated_allowed):
        raise ScopeRefused([f"{name} does not offer purpose-built roles: its request policy does not allow them."])
    try:
        asked = scoping.request(scope.get("actions"), scope.get("resources"), scope.get("parameters"))
        document = scoping.build(template_text(principal), principal.template_variables(), mode, asked,
                                 parameters_allowed=principal.parameters_allowed)
    except scoping.ScopeError as refused:
        raise ScopeRefused(_refusal(refused, principal, policy)) from None
    findings = _judge(document, principal, policy)
    return Scoped(mode, asked.as_dict(), scoping.text(document), lint.as_dicts(findings))


def _refusal(refused, principal, policy):
    messages = [_sentence(p) for p in refused.problems]
    if refused.too_large:
        messages.append("AWS refuses a session policy that long: ask for a purpose-built role instead."
                        if policy and policy.dedicated_allowed else
                        f"Ask for fewer actions or resources, or for the whole of {principal.name}.")
    return messages


def _sentence(text):
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _judge(document, principal, policy):
    """The lint's findings; ``ScopeRefused`` when one is an error or is forbidden by the request policy."""
    account = principal.get_account()
    findings = lint.lint(document, account.partition, account.account_id)
    errors = [f for f in findings if f.severity == lint.ERROR]
    forbidden = lint.forbidden(findings, policy.forbidden_findings if policy else lint.DEFAULT_FORBIDDEN)
    if errors:
        raise ScopeRefused([_sentence(f.message) for f in errors])
    if forbidden:
        raise ScopeRefused([f"Refused by the request policy of {principal.name} ({f.code}): {f.message}."
                            for f in forbidden])
    return findings


def recheck(req, policy):
    """Why ``req``'s scope can no longer be granted (empty: it can): the request policy no longer allows
    its mode, the template changed so that the same request builds another policy, or a finding is now
    forbidden."""
    if req.scope_mode not in MODES:
        return []
    try:
        again = _prepare(req.principal, policy, req.scope_mode, {**req.scope, "mode": req.scope_mode})
    except ScopeRefused as refused:
        return [f"Its scope no longer holds: {' '.join(refused.messages)}"]
    if json.loads(again.policy) != json.loads(req.scope_policy or "null"):
        return [f"The template of {req.principal.name} changed since the request: the same scope now gives "
                "another policy. The requester can ask again."]
    return []


def counted(req, outcome):
    """Count ``req`` in akeru_scoped_requests_total when it is scoped."""
    if req.scope_mode in MODES:
        SCOPED_REQUESTS.labels(req.scope_mode, outcome).inc()


def review(req):
    """What approvers read of a scoped request: the exact policy (indented), the diff against the standing
    policy (None when that is not known) and the findings."""
    if req.scope_mode not in MODES:
        return None
    standing = standing_document(req.principal)
    try:
        document = json.loads(req.scope_policy)
    except (TypeError, ValueError):
        document = {}
    diff = scoping.diff(standing, document).as_dict() if standing is not None else None
    return {"mode": req.scope_mode, "mode_label": ScopeMode(req.scope_mode).label, "policy": scoping.pretty(
        req.scope_policy), "diff": diff, "findings": req.findings, "asked": req.scope,
        "actions": sum(len(lint.listed(s.get("Action", []))) for s in lint.statements(document))}

"""Access as code: today's desired state written as ``akeru/v1`` files (``export``), what applying files would
change (``plan``), and applying them (``apply``) in one transaction, all or nothing.

The files are read and checked by ``akeru.domain.ascode`` against what the database holds (``facts``);
nothing changes unless every file is valid. The database's objects are put in the files' form
(``current``), so the export, the plan and the apply compare like with like. An apply changes an object
through the code the admin's save uses: a principal's change of desired state bumps its generation and
queues its sync on commit (``request_sync``), a pruned principal is torn down (``request_teardown``), an
account changed is tested; every change is an ``AuditEvent`` naming the source (file, line, commit), and
each applied object records where it came from (``CodeManaged``).
"""

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from .. import audit
from ..domain import ascode, validation
from ..domain.approvals import schedule_ids
from ..metrics import instruments
from ..models import (
    AccessRole, Account, ApprovalRule, AuditEvent, AWSRole, PolicyTemplate, RequestPolicy, SlackRoute, Status,
)
from ..models.accounts import default_iam_path, default_partition, default_remote_access_role
from ..models.slack import CHANNEL_ID
from ..outbox import intend, request_sync, request_teardown
from ..settings.accessor import akeru_settings

MODELS = {"Account": Account, "Principal": AWSRole, "Grant": AccessRole, "RequestPolicy": RequestPolicy,
          "ApprovalRule": ApprovalRule, "SlackRoute": SlackRoute}
# A principal's fields whose change IAM must see (the admin's ``DESIRED_FIELDS``, as files name them): they
# bump the generation. ``require_passkey``, ``keep_vending`` and ``parameters_allowed`` are how Akeru vends and
# what may be requested: no sync.
PRINCIPAL_DESIRED_IN_FILES = ("name", "template", "trust", "iam_user", "mfa", "ec2", "lambda", "description")
# The columns an apply writes of each kind (beside the ``CodeManaged`` ones).
WRITTEN = {
    "Account": ("name", "account_id", "partition", "remote_access_role", "iam_path", "enabled"),
    "ApprovalRule": ("name", "is_default", "approvals_required", "remind_after", "escalate_after", "escalation_group",
                     "oncall_auto_approve", "oncall_schedules"),
    "Principal": ("account", "name", "policy", "trust", "user", "mfa", "ec2", "aws_lambda", "description",
                  "require_passkey", "keep_vending", "parameters_allowed", "updated_at"),
    "Grant": ("role", "user", "group", "expires_at"),
    "RequestPolicy": ("requestable", "max_duration", "approver_group", "two_approvals", "break_glass",
                      "revoke_on_expiry", "ticket_required", "ticket_pattern", "ticket_url_template", "approval_rule",
                      "narrowing_allowed", "dedicated_allowed", "forbidden_findings"),
    "SlackRoute": ("channel", "principal", "account", "note"),
}
SUFFIXES = (".yaml", ".yml")
COMMIT_FILE = "COMMIT"  # a checkout's revision, when the apply is not told one


class Invalid(Exception):
    """The files cannot be applied: ``problems`` says every reason, with file and line."""

    def __init__(self, problems, message="the files are invalid; nothing was applied", outcome="invalid"):
        super().__init__(message)
        self.problems, self.outcome = problems, outcome  # outcome: the akeru_code_applies_total label


# --- reading files ---------------------------------------------------------------------------------------


def read_path(path):
    """``(documents, problems)`` of every ``*.yaml``/``*.yml`` file under ``path`` (or of the one file), in
    name order; file names are relative to ``path`` (what messages and ``source_file`` say)."""
    root = Path(path)
    if not root.exists():
        raise Invalid([ascode.Problem(str(path), 0, "no such file or directory")])
    files, base = source_files(root), (root.parent if root.is_file() else root)
    documents, problems = [], []
    for file in files:
        found, wrong = ascode.read(file.relative_to(base).as_posix(), file.read_bytes())
        documents.extend(found)
        problems.extend(wrong)
    if not files:
        problems.append(ascode.Problem(str(path), 0, "no .yaml or .yml file here"))
    return documents, problems


def source_files(root):
    """The files ``read_path`` reads under ``root`` (a directory, or one file), in name order."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def commit_of(path):
    """The revision a checkout says it is at (its ``COMMIT`` file), or ''."""
    file = Path(path) / COMMIT_FILE
    return file.read_text(encoding="utf-8").strip()[:64] if file.is_file() else ""


# --- the database in the files' form ---------------------------------------------------------------------


def seconds(value):
    return None if value is None else int(value.total_seconds())


def names(related):
    return tuple(sorted(o.name if hasattr(o, "name") else o.get_username() for o in related.all()))


def current():
    """Every object the files can describe, as ``ascode.Current`` (a principal being deleted is gone; a
    purpose-built role, its grant and anything else of it are Akeru's, never the files'; so is the grant an
    approved access request made, which ends with its request)."""
    found = []

    def add(kind, obj, values):
        found.append(ascode.Current(kind, values, obj.pk, obj.source_file, obj.source_digest, obj.source_line,
                                    obj.source_commit))

    for account in Account.objects.order_by("account_id"):
        add("Account", account, {"name": account.name, "account_id": account.account_id,
                                 "partition": account.partition, "remote_access_role": account.remote_access_role,
                                 "iam_path": account.iam_path, "enabled": account.enabled})
    for rule in ApprovalRule.objects.select_related("escalation_group").prefetch_related("required_groups"):
        add("ApprovalRule", rule, {
            "name": rule.name, "default": rule.is_default, "approvals_required": rule.approvals_required,
            "required_groups": names(rule.required_groups), "remind_after": seconds(rule.remind_after),
            "escalate_after": seconds(rule.escalate_after),
            "escalation_group": rule.escalation_group.name if rule.escalation_group else None,
            "oncall_auto_approve": rule.oncall_auto_approve,
            "oncall_schedules": tuple(sorted(schedule_ids(rule.oncall_schedules)))})
    principals = AWSRole.objects.exclude(status=Status.DELETING).filter(PURPOSE_BUILT_NOT).select_related("account")
    for p in principals:
        add("Principal", p, {"account": p.account.name, "name": p.name, "template": p.policy, "iam_user": p.user,
                             "ec2": p.ec2, "lambda": p.aws_lambda, "trust": p.trust, "mfa": p.mfa,
                             "require_passkey": p.require_passkey, "keep_vending": p.keep_vending,
                             "description": p.description, "parameters_allowed": p.parameters_allowed})
    for g in (AccessRole.objects.live().exclude(role__status=Status.DELETING)  # an expired grant is not desired
              .filter(purpose_built_not("role"), access_request__isnull=True)  # a request's grant is the request's
              .select_related("role__account", "user", "group")):
        add("Grant", g, {"account": g.role.account.name, "principal": g.role.name,
                         "user": g.user.get_username() if g.user else None, "group": g.group.name if g.group else None,
                         "expires_at": g.expires_at})
    for rp in (RequestPolicy.objects.exclude(principal__status=Status.DELETING).filter(purpose_built_not("principal"))
               .select_related("principal__account", "approver_group", "approval_rule")
               .prefetch_related("requester_users", "requester_groups", "watcher_groups")):
        add("RequestPolicy", rp, {
            "account": rp.principal.account.name, "principal": rp.principal.name, "requestable": rp.requestable,
            "max_duration": seconds(rp.max_duration), "requester_users": names(rp.requester_users),
            "requester_groups": names(rp.requester_groups),
            "approver_group": rp.approver_group.name if rp.approver_group else None,
            "two_approvals": rp.two_approvals, "break_glass": rp.break_glass,
            "revoke_on_expiry": rp.revoke_on_expiry, "ticket_required": rp.ticket_required,
            "ticket_pattern": rp.ticket_pattern, "ticket_url_template": rp.ticket_url_template,
            "watcher_groups": names(rp.watcher_groups),
            "approval_rule": rp.approval_rule.name if rp.approval_rule else None,
            "narrowing_allowed": rp.narrowing_allowed, "dedicated_allowed": rp.dedicated_allowed,
            "forbidden_findings": tuple(sorted(rp.forbidden_findings or ()))})
    for route in SlackRoute.objects.select_related("principal__account", "account"):
        if route.principal_id and (route.principal.status == Status.DELETING or route.principal.dedicated_for_id):
            continue
        account = route.principal.account if route.principal_id else route.account
        add("SlackRoute", route, {"channel": route.channel, "account": account.name if account else None,
                                  "principal": route.principal.name if route.principal_id else None,
                                  "note": route.note})
    return found


def purpose_built_not(relation):
    """Rows whose principal (through ``relation``) is not a purpose-built role."""
    return Q(**{f"{relation}__dedicated_for__isnull": True})


PURPOSE_BUILT_NOT = Q(dedicated_for__isnull=True)


# --- export ----------------------------------------------------------------------------------------------


def export_files():
    """``{file name: text}`` of today's desired state: one file per kind, objects in a stable order, never a
    secret (keys, TOTP or passkey material, tokens, webhook or Slack secrets are not in the format; an
    account's external id neither: set it in the admin)."""
    by_kind = {kind.name: [] for kind in ascode.KINDS}
    for obj in current():
        by_kind[obj.kind].append(obj.values)
    return {kind.file: ascode.render(kind.name, sorted(by_kind[kind.name], key=lambda v, k=kind.name:
                                                       ascode.key_of(k, v)))
            for kind in ascode.KINDS}


def export(out_dir):
    """Write the files into ``out_dir`` (created when missing); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, text in export_files().items():
        target = Path(out_dir) / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


# --- checking --------------------------------------------------------------------------------------------


def facts(prune=False):
    """What validation needs of the database and the settings."""
    accounts = {}
    for a in Account.objects.all():
        account = validation.AccountFacts(name=a.name, account_id=a.account_id, partition=a.partition,
                                          iam_path=a.iam_path, remote_access_role=a.remote_access_role,
                                          enabled=a.enabled)
        accounts[a.name.lower()] = accounts[a.account_id] = account
    principals, deleting, purpose_built = {}, set(), set()
    for account, name, user, status, built_for in AWSRole.objects.values_list("account__name", "name", "user",
                                                                                "status", "dedicated_for"):
        if built_for is not None:
            purpose_built.add((account.lower(), name.lower()))
        elif status == Status.DELETING:
            deleting.add((account.lower(), name.lower()))
        else:
            principals[(account.lower(), name.lower())] = user
    rows = list(PolicyTemplate.objects.filter(present=True).only("name", "valid", "body"))
    templates = {row.name: row.valid for row in rows}
    settings_context = validation.Context(
        account=validation.AccountFacts(name="", account_id=""),
        remote_access_role=akeru_settings.REMOTE_ACCESS_ROLE,
        reserved_names=tuple(akeru_settings.reserved_names),
        trusted_accounts=tuple(akeru_settings.trusted_accounts),
        trusted_organizations=tuple(akeru_settings.trusted_organizations))
    return ascode.Facts(
        accounts=accounts, principals=principals, deleting=frozenset(deleting), purpose_built=frozenset(purpose_built),
        templates=frozenset(templates),
        invalid_templates=frozenset(name for name, valid in templates.items() if not valid),
        parameterised_templates={row.name: row.parameters for row in rows if row.parameters},
        users=frozenset(get_user_model().objects.values_list("username", flat=True)),
        groups=frozenset(Group.objects.values_list("name", flat=True)),
        rules=frozenset(ApprovalRule.objects.annotate(lower=Lower("name")).values_list("lower", flat=True)),
        now=timezone.now(), create_groups=bool(akeru_settings.AKERU_APPLY_CREATE_GROUPS),
        context=settings_context, prune=prune)


def model_problems(documents, existing):
    """What the models' own rules refuse (an account's fields, a request policy's durations and ticket
    rules, a route's channel id), asked of unsaved rows built from the documents."""
    problems = []
    for document in documents:
        v = document.values
        errors = {}
        if document.kind == "Account":
            before = existing.get(document.key())
            account = Account(pk=before.pk if before else None, name=v.get("name", ""),
                              account_id=v.get("account_id", ""), partition=v.get("partition") or default_partition(),
                              remote_access_role=v.get("remote_access_role") or default_remote_access_role(),
                              iam_path=v.get("iam_path") or default_iam_path(), enabled=v.get("enabled", True))
            errors = account.problems()
        elif document.kind == "RequestPolicy":
            policy = RequestPolicy(requestable=v.get("requestable", False),
                                   max_duration=timedelta(seconds=v.get("max_duration", 4 * 3600)),
                                   approver_group_id=1 if v.get("approver_group") else None,
                                   break_glass=v.get("break_glass", False), ticket_pattern=v.get("ticket_pattern", ""),
                                   ticket_url_template=v.get("ticket_url_template", ""))
            try:
                policy.clean()
            except ValidationError as exc:
                errors = {k: e for k, e in exc.message_dict.items() if k != "max_duration"}  # the checks say it
        elif document.kind == "SlackRoute" and not CHANNEL_ID.fullmatch(v.get("channel", "")):
            errors = {"channel": [f"{v.get('channel')!r} is not a Slack channel id: give the id (e.g. C0123ABCD, in "
                                  "the channel's details), not its #name."]}
        for name, messages in errors.items():
            for message in messages if isinstance(messages, list) else [messages]:
                problems.append(document.problem(f"{name}: {message}", name))
    return problems


def check_path(path, prune=False):
    """``(documents to apply, ascode.Checked, current objects)``; raises ``Invalid`` with every problem."""
    documents, problems = read_path(path)
    if problems:
        raise Invalid(sorted(problems, key=lambda p: (p.file, p.line)))
    Account.objects.default()  # the settings' account exists (made when missing, as every other path does)
    account_defaults(documents)
    checked = ascode.check(documents, facts(prune))
    objects = renamed(current(), documents)
    by_key = {ascode.key_of(c.kind, c.values): c for c in objects}
    checked.problems.extend(model_problems(documents, by_key))
    checked.problems.sort(key=lambda p: (p.file, p.line))
    if checked.errors:
        raise Invalid(checked.problems)
    skipped = {id(d) for d in checked.skipped}
    return [d for d in documents if id(d) not in skipped], checked, objects


def account_defaults(documents):
    """An account's fields a file leaves out keep what the database holds (a new account: the settings')."""
    defaults = {"partition": default_partition, "remote_access_role": default_remote_access_role,
                "iam_path": default_iam_path}
    accounts = {a.account_id: a for a in Account.objects.all()}
    for document in documents:
        if document.kind != "Account":
            continue
        before = accounts.get(document.values.get("account_id"))
        for name, default in defaults.items():
            if document.values.get(name) is None:
                document.values[name] = getattr(before, name) if before else default()


def renamed(objects, documents):
    """``objects`` with the accounts the files rename named as the files name them (a renamed account's
    principals are the same principals)."""
    names = {d.values.get("account_id"): d.values.get("name") for d in documents if d.kind == "Account"}
    new = {c.values["name"]: names[c.values["account_id"]] for c in objects
           if c.kind == "Account" and names.get(c.values["account_id"]) not in (None, c.values["name"])}
    if not new:
        return objects
    return [replace(c, values={**c.values, "account": new.get(c.values["account"], c.values["account"])})
            if c.kind != "Account" and c.values.get("account") else c for c in objects]


def plan(path, prune=False):
    """What applying ``path`` would change (an ``ascode.Plan``, with its warnings); raises ``Invalid``."""
    documents, checked, objects = check_path(path, prune)
    result = ascode.plan(documents, objects, prune, waiting=checked.skipped)
    result.warnings = checked.warnings
    return result


# --- apply -----------------------------------------------------------------------------------------------


def apply(path, prune=False, force=False, source="", commit=""):
    """Apply the files under ``path`` in one transaction, all or nothing; returns the ``ascode.Plan`` applied.
    Without ``prune`` nothing absent from the files is deleted; with it, at most AKERU_APPLY_MAX_DELETE
    objects unless ``force``. Raises ``Invalid`` (nothing applied) for files that fail validation, a refused
    prune, or a change the database refused. The files are checked and planned inside the transaction, so
    what is applied is what was checked."""
    commit = commit or commit_of(path)
    try:
        with transaction.atomic():
            documents, checked, objects = check_path(path, prune)
            result = ascode.plan(documents, objects, prune, waiting=checked.skipped)
            result.warnings, result.commit = checked.warnings, commit
            limit = akeru_settings.AKERU_APPLY_MAX_DELETE
            if result.deletions > limit and not force:
                raise Invalid([ascode.Problem(str(path), 0, too_many_deletions(result.deletions, limit))],
                              "too many deletions; nothing was applied", outcome="refused")
            applier = Applier(source or str(path), commit)
            applier.groups(checked.missing_groups)
            for change in result.changes:
                applier.apply(change)
            applier.mark_unchanged(result.unchanged)
            applier.finish()
    except (IntegrityError, ValidationError, ObjectDoesNotExist) as exc:
        refused = Invalid([ascode.Problem(str(path), 0, f"the database refused a change ({exc}); nothing was "
                                                        "applied")],
                          "the database refused a change; nothing was applied", outcome="failed")
        instruments.CODE_APPLIES.labels(refused.outcome).inc()
        record_refusal(path, commit, refused)
        raise refused from exc
    except Invalid as exc:
        instruments.CODE_APPLIES.labels(exc.outcome).inc()
        record_refusal(path, commit, exc)  # after the rollback: the refusal is recorded
        raise
    result.applied = bool(result)
    instruments.CODE_APPLIES.labels("applied" if result else "unchanged").inc()
    return result


def too_many_deletions(count, limit):
    return (f"the files would delete {count} objects, more than AKERU_APPLY_MAX_DELETE ({limit}); check the "
            "checkout is complete, then give --force")


def record_refusal(path, commit, exc):
    audit.record(CODE, AuditEvent.Action.CODE_REFUSED, AuditEvent.Outcome.REFUSED,
                 "; ".join(str(p) for p in exc.problems if not p.warning)[:2000],
                 detail={"source": str(path), "commit": commit, "problems": len(exc.problems)})


CODE = audit.Requester(None, channel=AuditEvent.Channel.CODE)


class Applier:
    """Applies a plan's changes, one object at a time, in the plan's order (accounts, rules, principals,
    grants, policies, routes; deletions last, in reverse)."""

    def __init__(self, source, commit):
        self.source, self.commit = source, commit
        self.to_sync, self.to_tear_down, self.accounts_changed = [], [], []
        self.cache = {}

    # references, each read once (an earlier change of the same apply may have created it)
    def cached(self, key, load):
        if key not in self.cache:
            self.cache[key] = load()
        return self.cache[key]

    def account(self, name):
        return self.cached(("account", name), lambda: Account.objects.get(name=name))

    def principal(self, account, name):
        return self.cached(("principal", account, name.lower()), lambda: AWSRole.objects.exclude(
            status=Status.DELETING).select_related("account").get(account__name=account, name__iexact=name))

    def group(self, name):
        return self.cached(("group", name), lambda: Group.objects.get(name=name)) if name else None

    def user(self, name):
        return self.cached(("user", name), lambda: get_user_model().objects.get(username=name)) if name else None

    def groups(self, missing):
        for name in sorted(missing):
            Group.objects.get_or_create(name=name)

    def marks(self, document):
        return {"source_file": document.file, "source_line": document.line, "source_commit": self.commit,
                "source_digest": ascode.digest(document.kind, document.values)}

    def apply(self, change):
        if change.op == ascode.DELETE:
            self.delete(change)
            return
        document = change.document
        values = ascode.complete(document.kind, document.values)
        obj = MODELS[document.kind].objects.get(pk=change.current.pk) if change.current else None
        created = obj is None
        obj, principal = getattr(self, f"write_{document.kind.lower()}")(obj, values)
        for name, value in self.marks(document).items():
            setattr(obj, name, value)
        # as the admin's save: only the columns the files describe (never the status, lease, generation or
        # health columns a worker may have written since the row was read)
        obj.save(update_fields=None if created else [*WRITTEN[document.kind], *self.marks_fields])
        relations = getattr(self, f"relate_{document.kind.lower()}", None)
        if relations:
            relations(obj, values)
        if document.kind == "Principal" and (change.op == ascode.CREATE or any(
                name in PRINCIPAL_DESIRED_IN_FILES for name, _, _ in change.fields)):
            self.to_sync.append(obj.pk)  # IAM must see it: a new generation, synced on commit
        self.audit(change, principal)

    def audit(self, change, principal):
        detail = {"op": change.op, "kind": change.kind, "object": change.label, "source": self.source,
                  "commit": self.commit, "fields": {name: {"before": b, "after": a} for name, b, a in change.fields}}
        if change.document is not None:
            detail.update(file=change.document.file, line=change.document.line)
        where = f" from {change.where}" if change.where else ""
        at = f" at {self.commit}" if self.commit else ""
        audit.record(CODE, AuditEvent.Action.CODE_APPLIED, AuditEvent.Outcome.SUCCESS,
                     f"{change.op} {change.label}{where}{at}", principal=principal, detail=detail)

    def write_account(self, obj, v):
        obj = obj or Account()
        obj.name, obj.account_id, obj.enabled = v["name"], v["account_id"], v["enabled"]
        obj.partition = v["partition"] or obj.partition or default_partition()
        obj.remote_access_role = v["remote_access_role"] or obj.remote_access_role or default_remote_access_role()
        obj.iam_path = v["iam_path"] or obj.iam_path or default_iam_path()
        self.accounts_changed.append(obj)
        return obj, None

    def write_approvalrule(self, obj, v):
        obj = obj or ApprovalRule()
        obj.name, obj.is_default, obj.approvals_required = v["name"], v["default"], v["approvals_required"]
        obj.remind_after = timedelta(seconds=v["remind_after"]) if v["remind_after"] is not None else None
        obj.escalate_after = timedelta(seconds=v["escalate_after"]) if v["escalate_after"] is not None else None
        obj.escalation_group = self.group(v["escalation_group"])
        obj.oncall_auto_approve, obj.oncall_schedules = v["oncall_auto_approve"], ",".join(v["oncall_schedules"])
        if obj.is_default:  # one default at a time: the files' moves it
            ApprovalRule.objects.filter(is_default=True).exclude(pk=obj.pk).update(is_default=False)
        return obj, None

    def relate_approvalrule(self, obj, v):
        obj.required_groups.set([self.group(n) for n in v["required_groups"]])

    def write_principal(self, obj, v):
        obj = obj or AWSRole(account=self.account(v["account"]))  # given: the default account is a query
        obj.account = self.account(v["account"])
        obj.name, obj.policy, obj.trust, obj.user = v["name"], v["template"], v["trust"] or "", v["iam_user"]
        obj.mfa, obj.ec2, obj.aws_lambda, obj.description = v["mfa"], v["ec2"], v["lambda"], v["description"] or ""
        obj.require_passkey, obj.keep_vending = v["require_passkey"], v["keep_vending"]
        obj.parameters_allowed = v["parameters_allowed"]
        return obj, obj

    def write_grant(self, obj, v):
        obj = obj or AccessRole()
        obj.role = self.principal(v["account"], v["principal"])
        obj.user, obj.group, obj.expires_at = self.user(v["user"]), self.group(v["group"]), v["expires_at"]
        return obj, obj.role

    def write_requestpolicy(self, obj, v):
        principal = self.principal(v["account"], v["principal"])
        obj = obj or RequestPolicy(principal=principal)
        for name in ("requestable", "two_approvals", "break_glass", "revoke_on_expiry", "ticket_required",
                     "narrowing_allowed", "dedicated_allowed"):
            setattr(obj, name, v[name])
        obj.max_duration = timedelta(seconds=v["max_duration"])
        obj.ticket_pattern, obj.ticket_url_template = v["ticket_pattern"] or "", v["ticket_url_template"] or ""
        obj.forbidden_findings = sorted(v["forbidden_findings"])
        obj.approver_group = self.group(v["approver_group"])
        obj.approval_rule = ApprovalRule.objects.get(name__iexact=v["approval_rule"]) if v["approval_rule"] else None
        return obj, principal

    def relate_requestpolicy(self, obj, v):
        obj.requester_users.set([self.user(n) for n in v["requester_users"]])
        obj.requester_groups.set([self.group(n) for n in v["requester_groups"]])
        obj.watcher_groups.set([self.group(n) for n in v["watcher_groups"]])

    def write_slackroute(self, obj, v):
        obj = obj or SlackRoute()
        obj.channel, obj.note = v["channel"], v["note"] or ""
        obj.principal = self.principal(v["account"], v["principal"]) if v["principal"] else None
        obj.account = self.account(v["account"]) if v["account"] and not v["principal"] else None
        return obj, obj.principal

    def delete(self, change):
        model = MODELS[change.kind]
        obj = model.objects.get(pk=change.current.pk)
        principal = obj if change.kind == "Principal" else getattr(obj, "role", None) or getattr(obj, "principal", None)
        self.audit(change, principal)
        if change.kind == "Principal":
            self.to_tear_down.append(obj.pk)  # the row goes once IAM is torn down
        else:
            obj.delete()

    def mark_unchanged(self, unchanged):
        """Objects the files describe as they are: recorded as managed by code (no change, no audit). One already
        managed keeps its marks, and the commit it was applied at, unless its place in the files moved; only the
        rows whose marks differ are written, a kind at a time (never a query per object: an apply of a new commit
        that changes one object writes one)."""
        by_model = {}
        for document, existing in unchanged:
            marks = self.marks(document)
            if existing.source_file and (existing.source_file, existing.source_line, existing.source_digest) == (
                    marks["source_file"], marks["source_line"], marks["source_digest"]):
                continue
            by_model.setdefault(MODELS[document.kind], {})[existing.pk] = marks
        for model, rows in by_model.items():
            pks = list(rows)
            for start in range(0, len(pks), self.BATCH):
                # Rows read with only their marks: a new instance would compute every default (a principal's
                # account is a query).
                objs = list(model.objects.filter(pk__in=pks[start:start + self.BATCH]).only(*self.marks_fields))
                for obj in objs:
                    for name, value in rows[obj.pk].items():
                        setattr(obj, name, value)
                model.objects.bulk_update(objs, list(self.marks_fields))

    BATCH = 500
    marks_fields = ("source_file", "source_line", "source_commit", "source_digest")

    def finish(self):
        if self.to_sync:
            request_sync(self.to_sync, trigger="code apply")
        if self.to_tear_down:
            request_teardown(self.to_tear_down)
        for account in self.accounts_changed:
            if account.enabled:  # as the admin's save: check the new or changed settings at once
                intend("akeru.test_account", account.pk)

"""The template catalog: list the bucket, fetch what changed, judge every template, and re-sync the
principals a change concerns (load → observe → judge → record for the catalog)."""

import hashlib
import logging

from django.utils import timezone

from ..outbox.broker import TimeLimitReached
from ..aws import templates
from ..aws.errors import Retryable, Terminal
from ..domain import policy, scope
from ..settings.accessor import akeru_settings
from ..models import AWSRole, CatalogRefresh, PolicyTemplate, Status
from ..outbox import request_sync

log = logging.getLogger(__name__)


def admin_refusal(name, grants):
    return (f"template {name!r} grants IAM administration ({', '.join(grants)}), which Akeru refuses unless "
            "AKERU_ALLOW_ADMIN_TEMPLATES is set")


def template_review(text, name="template"):
    """``(problems, admin_grants)``: why a template cannot be used (rendered with placeholder values),
    and the administrator actions it grants (a problem unless AKERU_ALLOW_ADMIN_TEMPLATES, else a warning)."""
    variables = {"account_id": akeru_settings.ACCOUNT_ID or "123456789012", "name": "example-principal",
                 "partition": akeru_settings.AKERU_PARTITION}
    # a parameterised template (``${bucket}``) is checked with each placeholder filled: it is valid as a pattern
    # for purpose-built roles (``PolicyTemplate.parameters`` says it takes them)
    document, problems = policy.check_document_text(scope.with_samples(text), variables, "template")
    grants = policy.admin_grants(document) if document is not None else []
    if grants and akeru_settings.refuse_admin_templates:
        problems.append(admin_refusal(name, grants))
    return problems, grants


def template_problems(text):
    """Why a template cannot be used, or []."""
    return template_review(text)[0]


def _store_template(row, text, etag):
    row.body, row.etag = text, etag
    _review_template(row)


def _review_template(row):
    """Judge the body a catalog row holds (again: the settings that judge it may have changed)."""
    problems, grants = template_review(row.body, row.name)
    row.valid, row.error = not problems, "; ".join(problems)
    row.warning = f"grants IAM administration: {', '.join(grants)}" if grants else ""
    row.present, row.last_seen_at = True, timezone.now()


def _save_template(row):
    """Save a catalog row; a row another worker created meanwhile (two first syncs of principals
    using one template, or a sync beside the catalog refresh) is updated instead of colliding."""
    if row.pk:
        row.save()
        return row
    fields = [f.attname for f in PolicyTemplate._meta.concrete_fields if f.attname not in ("id", "name")]
    saved, _ = PolicyTemplate.objects.update_or_create(name=row.name, defaults={f: getattr(row, f) for f in fields})
    return saved


def refresh_catalog():
    """List the bucket, fetch new or changed templates, record validity. Returns the CatalogRefresh."""
    run = CatalogRefresh.objects.create()
    try:
        listed = templates.list_templates()
        existing = {t.name: t for t in PolicyTemplate.objects.all()}
        changed = []
        for item in listed:
            row = existing.get(item.name) or PolicyTemplate(name=item.name)
            was_usable = bool(row.pk) and row.valid
            if row.etag != item.etag or not row.body:
                try:
                    text, etag = templates.fetch(item.key, row.etag if row.body else None)
                except Terminal as exc:  # this object only (not UTF-8, unreadable, gone since listed)
                    row.body, row.etag, row.valid, row.error = "", item.etag, False, str(exc)
                    fetched = True
                else:
                    fetched = text is not None  # None: 304, the body we hold is current
                    if fetched:
                        _store_template(row, text, etag)
                    else:
                        _review_template(row)
                if fetched and row.pk:
                    changed.append(item.name)
            else:
                _review_template(row)  # unchanged in S3: judged again under today's settings (no S3 call)
            if row.pk and row.valid and not was_usable and item.name not in changed:
                changed.append(item.name)  # usable again (today's settings allow it): its principals re-sync
            row.key, row.size, row.last_modified = item.key, item.size, item.last_modified
            row.present, row.last_seen_at = True, timezone.now()
            _save_template(row)
        gone = [name for name in existing if name not in {i.name for i in listed}]
        PolicyTemplate.objects.filter(name__in=gone).update(present=False)
        run.ok, run.found, run.changed = True, len(listed), changed
    except (Retryable, Terminal) as exc:
        run.ok, run.error = False, str(exc)
        log.warning("template catalog refresh failed: %s", exc)
    except TimeLimitReached:
        run.ok, run.error = False, "stopped: the task's time limit (AKERU_RUN_TIME_LIMIT) was reached"
        log.warning("template catalog refresh stopped at its time limit")
    run.finished_at = timezone.now()
    run.save()
    return run


def refresh_catalog_and_resync(trigger="template changed"):
    """Refresh the catalog, then re-sync every principal whose applied template version is not the
    current one (edited, now invalid, or deleted: the sync then marks it failed with the reason) and
    every principal, whatever its status, whose template changed or became usable again (a template
    fixed after a bad push brings its ``failed`` principals back). The beat task, the admin's
    "Refresh catalog now" and ``akeru_templates`` all come here. Returns ``(run, re-synced count)``."""
    run = refresh_catalog()
    if not run.ok:
        return run, 0
    outdated = set(AWSRole.objects.template_outdated().values_list("pk", flat=True))
    revived = set(AWSRole.objects.templated().filter(policy__in=run.changed).exclude(status=Status.DELETING)
                  .values_list("pk", flat=True))
    pks = sorted(outdated | revived)
    if pks:
        request_sync(pks, trigger=trigger)
    return run, len(pks)


def scoped_etag(text):
    """What a purpose-built role records as its applied template version: a digest of its own policy."""
    return "scoped-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def load_template(principal):
    """The template text for ``principal``: the body the catalog holds (read from S3 once per template
    change, by the catalog refresh, not once per principal), or, for a template the catalog does not
    hold yet, one GET that stores it there. A template edited in S3 is picked up by the next catalog
    refresh, which re-syncs every principal whose applied ETag differs."""
    if principal.scoped_policy:  # a purpose-built role: the policy approved with its request, no template
        return principal.scoped_policy, scoped_etag(principal.scoped_policy)
    row = PolicyTemplate.objects.filter(name=principal.policy).first()
    if row is not None and row.present and row.body:
        return row.body, row.etag
    key = akeru_settings.template_key(principal.policy)
    try:
        text, etag = templates.fetch(key, row.etag if row and row.body else None)
    except templates.TemplateMissing:  # not for other errors: a missing bucket says nothing of the object
        if row:
            PolicyTemplate.objects.filter(pk=row.pk).update(present=False, error=f"{key} no longer exists")
        raise
    if text is None:
        return row.body, row.etag
    row = row or PolicyTemplate(name=principal.policy, key=key)
    _store_template(row, text, etag)
    row.key, row.size = key, len(text.encode())
    _save_template(row)
    return text, etag

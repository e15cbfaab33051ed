"""Purpose-built roles, the worker side: the AssumeRole probe that makes a new one vendable, and the
drift scan's sweep of those that outlived their request (or their row).

A purpose-built role is synced and torn down by the same pass as every principal (``principal.sync``:
its desired policy is the row's ``scoped_policy``, its teardown revokes sessions first); what is here
happens around that pass.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from ..aws import sts
from ..aws.errors import Retryable, Terminal
from ..domain import dedicated
from ..domain.reasons import Reason
from ..metrics.instruments import DEDICATED_ROLES
from ..models import AWSRole, Intent, Orphan, Status
from ..outbox import DELETE_ORPHAN_TASK, intend_many
from ..outbox.publish import PROBE_DEDICATED_TASK
from ..outbox.principals import retire
from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)


def probe(pk, now=None):
    """Assume purpose-built role ``pk`` once, as vending will: on success it is vendable from now
    (``assumable_at``). While IAM has not made it assumable yet (AccessDenied, NoSuchEntity) raises
    Retryable — the task backs off — until ``AKERU_DEDICATED_PROBE_WAIT`` has passed since its sync; then
    Terminal (the person is told it is still being prepared; the next sync probes again). Returns a sentence."""
    now = now or timezone.now()
    principal = AWSRole.objects.filter(pk=pk).first()
    if principal is None or not principal.dedicated or principal.status == Status.DELETING:
        return "gone"
    if principal.assumable_at is not None:
        return "assumable already"
    if principal.status != Status.SYNCED:
        raise Retryable(f"{principal.name} is {principal.status}, not yet synced; probing it later")
    try:
        sts.probe(principal.principal_arn, dedicated.PROBE_SESSION_NAME)
    except sts.VendError as error:
        waited = now - (principal.last_synced_at or now)
        if error.code in sts.PREPARING_CODES:
            if waited < timedelta(seconds=int(akeru_settings.AKERU_DEDICATED_PROBE_WAIT)):
                raise Retryable(f"{principal.name} is not assumable yet ({error.code})", reason=Reason.AWS_UNAVAILABLE) from None
        raise Terminal(f"{principal.name} could not be assumed after {int(waited.total_seconds())} s: {error}") from None
    AWSRole.objects.filter(pk=pk, assumable_at__isnull=True).update(assumable_at=now)
    DEDICATED_ROLES.labels("assumable").inc()
    log.info("%s: assumable (AssumeRole probe succeeded)", principal.name)
    return "assumable"


def retire_ended(account, now=None):
    """The drift scan's sweep: every purpose-built role of ``account`` whose request's access ended (or that
    lost its request) has its sessions revoked and is torn down. Returns how many."""
    pks = list(AWSRole.objects.filter(account=account).dedicated_ended(now).values_list("pk", flat=True))
    if pks:
        retire(pks, why="the drift scan found its request's access ended")
        log.info("%s: tearing down %d purpose-built role(s) whose request ended", account, len(pks))
    return len(pks)


def reprobe(account):
    """The drift scan's second chance: purpose-built roles of ``account`` synced but never found assumable
    (a probe that gave up) and with no probe waiting are probed again. Returns how many."""
    waiting = {tuple(args) for args in Intent.objects.filter(task=PROBE_DEDICATED_TASK).values_list("args", flat=True)}
    pks = [pk for pk in AWSRole.objects.filter(account=account, status=Status.SYNCED, assumable_at__isnull=True)
           .dedicated().values_list("pk", flat=True) if (pk,) not in waiting]
    if pks:
        intend_many(PROBE_DEDICATED_TASK, [[pk] for pk in pks])
    return len(pks)


def remove_orphans(account, snap):
    """Purpose-built roles in IAM that no row claims — a crash between IAM's create and the database, a row
    deleted by hand — are not left for an operator: their deletion is queued at once (``orphans.delete_orphan``
    reads their tags again first, and takes the role's same-named managed policy with it). A managed policy
    left alone by a build cut short (no role yet) is queued by its name. Returns how many were queued."""
    roles = [name for name, observed in snap["roles"].items() if dedicated.built_for(observed.tags) is not None]
    found = Orphan.objects.filter(account=account, deleting=False)
    pks = list(found.filter(type=Orphan.Type.ROLE, name__in=roles).values_list("pk", flat=True))
    pks += list(found.filter(type=Orphan.Type.POLICY, name__startswith=dedicated.NAME_PREFIX)
                .exclude(name__in=roles).values_list("pk", flat=True))
    if pks:
        Orphan.objects.filter(pk__in=pks).update(deleting=True, error="")
        intend_many(DELETE_ORPHAN_TASK, [[pk] for pk in pks])
        log.info("%s: removing %d purpose-built role(s) or policies no request claims", account, len(pks))
    return len(pks)

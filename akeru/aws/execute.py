"""Apply planned Actions: the only code that calls IAM write APIs."""

import logging

from botocore.exceptions import ClientError

from . import observe
from .errors import AlreadyExists, Retryable, Terminal, classify, describe, error_code

log = logging.getLogger(__name__)

# Removing something already gone is success: teardown and repair may be re-run at any point.
_REMOVALS = ("delete_", "detach_", "remove_", "deactivate_")


_NAMES = ("RoleName", "UserName", "GroupName", "InstanceProfileName", "PolicyArn")


def _targets(params):
    return {params[key] for key in _NAMES if key in params}


def execute(iam, actions, *, created=None):
    """Run actions in order; stop at the first failure.

    Returns the list of actions applied. Raises Retryable or Terminal (with the actions applied
    so far in ``exc.applied``) so the caller can record exactly how far it got.
    """
    applied = []
    created = set() if created is None else created  # names and ARNs of entities this run created
    for action in actions:
        response = None
        try:
            response = getattr(iam, action.op)(**action.params)
        except ClientError as exc:
            code = error_code(exc)
            if action.op.startswith(_REMOVALS) and code == "NoSuchEntity":
                log.info("%s: already gone", action)
            elif code == "NoSuchEntity" and created & _targets(action.params):
                # IAM is eventually consistent: an entity created a moment ago may not be visible yet.
                error = Retryable(f"{describe(exc)} (created a moment ago, not yet visible in IAM; will retry)")
                error.applied = applied
                raise error from None
            elif code == "EntityAlreadyExists":
                # What we observed is stale (another writer, or IAM's eventual consistency):
                # observe again and re-plan rather than guess.
                error = AlreadyExists(f"{describe(exc)} (IAM changed since it was read; will re-read and re-plan)")
                error.applied = applied
                raise error from None
            else:
                error = classify(exc)
                if not isinstance(error, (Retryable, Terminal)):
                    error = Terminal(describe(exc))
                error.applied = applied
                raise error from None
        except Exception as exc:
            error = classify(exc)
            if error is exc:
                raise
            error.applied = applied
            raise error from None
        log.info("applied %s", action)
        observe.remember_written(action, response)
        if action.op.startswith("create_"):
            created |= _targets(action.params)
            created.add(((response or {}).get("Policy") or {}).get("Arn"))
        applied.append(action)
    return applied

"""Purpose-built roles: a role created for one scoped request (``scope_mode == "dedicated"``) and removed
when its access ends.

The boundary the rest of Akeru calls — ``granted`` when such a request is approved (in the approval's
transaction), ``ended`` when its access ends (in that transaction), ``issue`` when its requester asks for
credentials; the lifecycle (provisioning through the engine, the AssumeRole probe, teardown, the roles
quota) lives behind it. Until it is built, a purpose-built request can be asked for and approved (its policy
is linted and stored like a narrowing's) but not vended: ``issue`` refuses clearly."""

from ..aws import sts


class NotReady(sts.VendError):
    """The purpose-built role cannot be vended (yet): not provisioned, or its probe has not succeeded."""


def granted(req):
    """``req`` (purpose-built) was approved: its role is to be provisioned (nothing here yet)."""


def ended(req):
    """``req``'s (purpose-built) access ended: its role is to be torn down (nothing here yet)."""


def issue(req, user, until=None):
    """Credentials of the role built for ``req`` for ``user``, ending no later than ``until``."""
    raise NotReady(f"the purpose-built role of request #{req.pk} is not ready: Akeru does not provision "
                   "purpose-built roles in this version", code="DedicatedNotReady")

"""Orphans: IAM objects carrying Akeru's tags that no principal claims. Listed from the drift scan's
snapshot (report only); deleted one by one when an operator asks, after reading their tags again."""

from dataclasses import replace

from django.db import transaction
from django.utils import timezone

from ..aws import clients, observe
from ..aws.errors import Terminal
from ..aws.execute import execute
from ..domain.planner import plan_teardown
from ..domain.types import OWNER_KEY, POLICY_DESCRIPTION, ObservedPrincipal, is_akerus
from ..models import AWSRole, Orphan
from .principal import observe_name


class Claims:
    """Which IAM objects carrying Akeru's tags some AWSRole row still describes. An object is an
    orphan only when it carries Akeru's tags (``akeru:managed`` or ``akeru:owner``) and no row claims
    it: its owner id is no row's, or (no owner id) no row of ``account`` has its name there,
    case-insensitively."""

    def __init__(self, account):
        self.owners = {str(uid) for uid in AWSRole.objects.values_list("uid", flat=True)}
        named = AWSRole.objects.filter(account=account).values_list("name", flat=True)
        applied = AWSRole.objects.filter(applied_account=account).values_list("applied_name", flat=True)
        self.names = {n.lower() for n in [*named, *applied] if n}

    def orphaned(self, tags, name):
        """Why ``tags`` make the object named ``name`` an orphan, or None when it is not one."""
        if not is_akerus(tags):
            return None
        owner = tags.get(OWNER_KEY)
        if owner:
            return None if owner in self.owners else f"its owner {owner} is no Akeru principal"
        return None if name.lower() in self.names else "tagged akeru:managed=true and no Akeru principal has its name"


def record_orphans(run, snap, iam):
    """List the IAM objects that carry Akeru's tags and that no row claims (report only). Tags come
    from the snapshot for roles and users; managed policies' tags (which the snapshot lacks) are read
    for the few policies that look like Akeru's; groups take no tags and are orphans only with their
    same-named user."""
    claims = Claims(run.account)
    found = {}  # (type, name) -> arn
    for table, kind in ((snap["roles"], Orphan.Type.ROLE), (snap["users"], Orphan.Type.USER)):
        for name, observed in table.items():
            if claims.orphaned(observed.tags, name):
                found[(kind, name)] = observed.arn
    orphan_names = {name for _, name in found}
    for arn, p in snap["policies"].items():
        name = arn.rsplit("/", 1)[-1]
        looks_like_ours = p.description.startswith(POLICY_DESCRIPTION) or name in orphan_names
        if looks_like_ours and (name.lower() not in claims.names or name in orphan_names):
            if claims.orphaned(observe.policy_tags(iam, arn), name):
                found[(Orphan.Type.POLICY, name)] = arn
    orphan_users = {name for kind, name in found if kind == Orphan.Type.USER}
    for name in snap["groups"]:
        if name in orphan_users:
            found[(Orphan.Type.GROUP, name)] = ""
    profile_tags = snap.get("instance_profile_tags", {})
    for name, roles in snap["instance_profiles"].items():
        if name in profile_tags:
            tags = profile_tags[name]
        elif name in orphan_names or set(roles) & orphan_names:
            tags = observe.instance_profile_tags(iam, name) or {}
        else:
            continue
        if claims.orphaned(tags, name):
            found[(Orphan.Type.INSTANCE_PROFILE, name)] = ""
    now = timezone.now()
    with transaction.atomic():
        for (kind, name), arn in found.items():
            Orphan.objects.update_or_create(account=run.account, type=kind, name=name,
                                            defaults={"arn": arn, "last_seen_at": now})
        Orphan.objects.filter(account=run.account, last_seen_at__lt=now).delete()
    run.orphans = len(found)


def delete_orphan(orphan):
    """Tear down one orphan IAM object chosen by an operator — after reading its tags again: an
    object that lost Akeru's tags or that a principal claims now is refused (Terminal), and of the
    objects named after an orphan role or user only those that are orphans themselves go."""
    account = orphan.account
    iam = clients.iam(account)
    claims = Claims(account)
    name = orphan.name
    if orphan.type in (Orphan.Type.ROLE, Orphan.Type.USER):
        observed = observe_name(iam, name, orphan.type == Orphan.Type.USER, account=account)
        if not observed.exists:
            return []
        why_not = _not_an_orphan(claims, observed.tags, name, orphan)
        observed = _orphans_only(claims, observed)
    elif orphan.type == Orphan.Type.POLICY:
        observed = ObservedPrincipal(name=name, is_user=False)
        observed.policy = observe.observe_policy(iam, orphan.arn, with_attachments=True)
        if observed.policy is None:
            return []
        why_not = _not_an_orphan(claims, observe.policy_tags(iam, orphan.arn), name, orphan)
    elif orphan.type == Orphan.Type.GROUP:
        observed = ObservedPrincipal(name=name, is_user=True)
        observed.group = observe.observe_group(iam, name)
        if observed.group is None:
            return []
        user = observe_name(iam, name, True, full=False, account=account)
        why_not = (f"{orphan} is no longer an orphan: IAM groups take no tags, and no orphan IAM user {name!r} "
                   f"(carrying Akeru's tags) stands for it any more") if not (
            user.exists and claims.orphaned(user.tags, name)) else None
    else:
        observed = ObservedPrincipal(name=name, is_user=False)
        observed.instance_profile_roles = observe.observe_instance_profile(iam, name)
        if observed.instance_profile_roles is None:
            return []
        why_not = _not_an_orphan(claims, observe.instance_profile_tags(iam, name) or {}, name, orphan)
    if why_not:
        raise Terminal(why_not)
    return execute(iam, plan_teardown(observed))


def _not_an_orphan(claims, tags, name, orphan):
    if claims.orphaned(tags, name):
        return None
    if not is_akerus(tags):
        return f"{orphan} no longer carries Akeru's tags (akeru:managed or akeru:owner); Akeru will not delete it"
    return f"{orphan} belongs to an Akeru principal now; Akeru will not delete it as an orphan"


def _orphans_only(claims, observed):
    """``observed`` without the same-named objects that are not orphans themselves."""
    changes = {}
    if observed.policy is not None and not claims.orphaned(observed.policy.tags or {}, observed.name):
        changes["policy"] = None
    if observed.instance_profile_roles is not None and not claims.orphaned(
            observed.instance_profile_tags or {}, observed.name):
        changes.update(instance_profile_roles=None, instance_profile_tags=None)
    return replace(observed, **changes) if changes else observed

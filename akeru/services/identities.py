"""A single sign-on's outcome inside Akeru: who the person is (``resolve_user``), their groups
(``apply_groups``), and the whole sign-in as one transaction with its audit record (``sign_in``); a
refusal is a ``Refused`` the web page shows, audited by ``refuse``.

**Identity linking** (docs/sign-in.md): a person is the pair (issuer, ``sub``) of a validated ID token,
kept in ``ExternalIdentity``. A pair Akeru knows is that user. A pair it does not know creates a new,
never-staff user named after ``AKERU_OIDC_USERNAME_CLAIM`` when ``AKERU_OIDC_CREATE_USERS`` is on — unless
a user of that name already exists: then the sign-in is refused, because a provider that lets people
choose or reuse a username (or an email) would otherwise hand them someone else's account. An operator
links an existing user by adding its external identity in the admin; ``AKERU_OIDC_LINK_USERS`` (off by
default, for moving password users over) links an existing user of that name at its first sign-in —
never a staff member or a superuser, never a user already linked at this issuer.

**Groups**: each sign-in sets the person's groups to exactly those of the token that Akeru knows (by name,
or by an ``ExternalGroup`` id with ``AKERU_OIDC_GROUP_MATCH=id``, where groups without an id mapping are
left alone); groups Akeru does not know are ignored. With ``AKERU_SCIM_TOKEN`` set, SCIM is the only
writer of group membership and the sign-in leaves groups alone.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import audit
from ..domain.claims import ClaimProblem, group_values, mfa_done, username_from
from ..models import AuditEvent, ExternalIdentity
from ..settings.accessor import akeru_settings

METHOD = "oidc"


class Refused(Exception):
    """A sign-in Akeru refuses: ``status`` (HTTP), ``code`` (the audit's and the metric's reason), a
    sentence for the person; ``user`` when the person is known."""

    def __init__(self, status, code, message, user=None):
        super().__init__(message)
        self.status, self.code, self.user = status, code, user


@dataclass
class Outcome:
    user: object
    created: bool
    mfa: bool
    groups_added: list = field(default_factory=list)
    groups_removed: list = field(default_factory=list)
    groups_managed: bool = True


def scim_manages_groups():
    """SCIM is on (``AKERU_SCIM_TOKEN``, declared by the SCIM part): it alone writes group membership.
    Read from Django's settings so this works before and after that declaration is merged."""
    return bool(akeru_settings.AKERU_SCIM_TOKEN)


def resolve_user(issuer, claims, create, link=False):
    """``(user, how)`` for the validated ``claims`` of ``issuer`` by the linking rule above; ``how`` is
    ``"known"``, ``"linked"`` or ``"created"``."""
    subject = claims["sub"]
    identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity:
        if not identity.user.is_active:
            raise Refused(403, "AccountDisabled", "Your Akeru account is deactivated. Ask an administrator if "
                          "you should still have access.", user=identity.user)
        return identity.user, "known"
    if not create and not link:
        raise _unknown()
    try:
        username = username_from(claims, akeru_settings.AKERU_OIDC_USERNAME_CLAIM)
    except ClaimProblem as problem:
        raise Refused(403, problem.code, str(problem)) from None
    User = get_user_model()
    existing = list(User._default_manager.filter(**{f"{User.USERNAME_FIELD}__iexact": username})[:2])
    linking = link and len(existing) == 1 and _linkable(existing[0], issuer)
    if existing and not linking:
        raise Refused(403, "AccountNotLinked", (
            f"An Akeru account named {username!r} already exists but is not linked to your identity at the "
            f"identity provider, and Akeru does not link it by its name or email. An administrator links it in "
            f"the admin (External identities)."))
    if not existing and not create:
        raise _unknown()
    try:
        with transaction.atomic():
            if linking:
                ExternalIdentity.objects.create(issuer=issuer, subject=subject, user=existing[0])
                return existing[0], "linked"
            user = User._default_manager.create(**{User.USERNAME_FIELD: username}, email=_text(claims, "email"),
                                                first_name=_text(claims, "given_name", 150),
                                                last_name=_text(claims, "family_name", 150))
            user.set_unusable_password()
            user.save(update_fields=["password"])
            ExternalIdentity.objects.create(issuer=issuer, subject=subject, user=user)
    except IntegrityError:  # the same person's other tab won the race: that row is them
        identity = ExternalIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
        if identity is None:
            raise
        return identity.user, "known"
    return user, "created"


def _unknown():
    return Refused(403, "UnknownPerson", "Akeru does not know you yet and creates no accounts at sign-in. Ask an "
                   "administrator to link your account to the identity provider.")


def _linkable(user, issuer):
    """An existing user a first sign-in may link by name (``AKERU_OIDC_LINK_USERS``): active, not staff, not a
    superuser, and not linked to anyone at this issuer already."""
    return (user.is_active and not user.is_staff and not user.is_superuser
            and not ExternalIdentity.objects.filter(issuer=issuer, user=user).exists())


def _text(claims, name, limit=254):
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def known_groups(values, match):
    """The Django groups the identity provider's ``values`` name, and the groups a sign-in manages."""
    if match == "id":
        return (Group.objects.filter(external_groups__external_id__in=values).distinct(),
                Group.objects.filter(external_groups__isnull=False).distinct())
    return Group.objects.filter(name__in=values), Group.objects.all()


def apply_groups(user, values, match):
    """Set ``user``'s managed groups to exactly the known ones among ``values``: (added, removed) names."""
    wanted, managed = known_groups(values, match)
    wanted = set(wanted)
    current = set(user.groups.filter(pk__in=managed.values("pk")))
    added, removed = wanted - current, current - wanted
    if removed:
        user.groups.remove(*removed)
    if added:
        user.groups.add(*added)
    return sorted(g.name for g in added), sorted(g.name for g in removed)


def sign_in(requester, issuer, claims):
    """The person of the validated ID token ``claims``, with their groups applied, in one transaction with
    the audit record; raises ``Refused`` (recorded by the caller through ``refuse``)."""
    managed = not scim_manages_groups()
    values = None
    if managed:
        try:
            values = group_values(claims, akeru_settings.AKERU_OIDC_GROUPS_CLAIM)
        except ClaimProblem as problem:
            raise Refused(403, problem.code, str(problem)) from None
    match = str(akeru_settings.AKERU_OIDC_GROUP_MATCH).strip().lower()
    with transaction.atomic():
        user, how = resolve_user(issuer, claims, bool(akeru_settings.AKERU_OIDC_CREATE_USERS),
                                 bool(akeru_settings.AKERU_OIDC_LINK_USERS))
        created = how == "created"
        outcome = Outcome(user, created, mfa_done(claims, _mfa_values()), groups_managed=managed)
        if managed:
            outcome.groups_added, outcome.groups_removed = apply_groups(user, values, match)
        ExternalIdentity.objects.filter(issuer=issuer, subject=claims["sub"]).update(last_sign_in_at=timezone.now())
        audit.record(
            audit.Requester(user=user, channel=requester.channel, source_ip=requester.source_ip,
                            user_agent=requester.user_agent),
            AuditEvent.Action.SIGN_IN, AuditEvent.Outcome.SUCCESS,
            f"signed in with single sign-on ({issuer})" + {"created": ": new user created",
                                                            "linked": ": linked to the existing user"}.get(how, ""),
            detail={"method": METHOD, "issuer": issuer, "subject": claims["sub"], "created": created,
                    "linked": how == "linked",
                    "mfa": outcome.mfa, "groups": "scim" if not managed else {
                        "added": outcome.groups_added, "removed": outcome.groups_removed}},
        )
    return outcome


def refuse(requester, refused, issuer, subject=""):
    """The audit record of a refused sign-in (never a token, a code or a secret in it)."""
    who = audit.Requester(user=refused.user, channel=requester.channel, source_ip=requester.source_ip,
                          user_agent=requester.user_agent)
    audit.record(who, AuditEvent.Action.SIGN_IN, AuditEvent.Outcome.REFUSED,
                 f"single sign-on refused ({refused.code}): {refused}",
                 detail={"method": METHOD, "issuer": issuer, "code": refused.code, "status": refused.status,
                         **({"subject": subject} if subject else {})})


def _mfa_values():
    values = akeru_settings.AKERU_OIDC_MFA_VALUES
    return values.split(",") if isinstance(values, str) else list(values or [])

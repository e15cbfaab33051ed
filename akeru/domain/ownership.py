"""Which IAM objects an ``AWSRole`` row may adopt, change or delete: the one place that decides.

Everything Akeru creates carries ``akeru:managed=true`` and ``akeru:owner=<the row's uid>``, the
row's stable identity (a rename keeps it). A row

- **owns** an object that carries its own owner id, or one it applied before (the database records
  what it applied: ``applied_name``/``applied_user``/``applied_ec2``) that carries no other owner id
  (a removed tag is drift the sync repairs);
- may **adopt** an object an operator tagged for adoption: ``akeru:managed=true`` without an owner id
  (or ``akeru:owner`` set to this row's uid, shown in the admin); a row carried over from
  akeru-cloud-access 0.0.2 (``legacy``, the row's ``adopt_legacy`` until its first successful sync) may
  also adopt the objects 0.0.2 created: same name, no Akeru owner id, at path ``/`` (0.0.2 never set a
  path). Anything else of that name is still refused;
- never touches anything else: an untagged object, or one carrying another row's owner id.

A sync refuses to start while the plan would touch an object the row may not adopt; a teardown
deletes only what the row owns.

IAM groups take no tags (GetAccountAuthorizationDetails returns none for them): a group is judged by
its same-named IAM user — Akeru creates a user's group right after the user and never alone — or by
the database's record that this row applied that group. So a group is this row's when the same-named
user is, and is never taken over when no user of that name is this row's.

Pure: no boto3, no ORM. ``akeru.reconcile.principal`` builds an ``Ownership`` from a row.
"""

from dataclasses import dataclass, field, replace
from enum import Enum

from akeru.domain.types import MANAGED_TAG, OWNER_KEY

ROLE, USER, POLICY, GROUP, INSTANCE_PROFILE = "role", "user", "policy", "group", "instance profile"
LEGACY_PATH = "/"  # akeru-cloud-access 0.0.2 created every object without a path


class Verdict(Enum):
    OWN = "own"  # carries this row's owner id, or this row applied it
    ADOPT = "adopt"  # an operator tagged it for adoption
    FOREIGN = "foreign"  # someone else's: never touched


@dataclass(frozen=True)
class Ownership:
    """``owner``: the row's uid. ``applied``: ``{(type, name)}`` of the objects the database says this
    row applied. ``legacy``: the row came from akeru-cloud-access 0.0.2 and adopts what 0.0.2 created
    (untagged, path ``/``)."""

    owner: str
    applied: frozenset = field(default_factory=frozenset)
    legacy: bool = False
    iam_path: str = LEGACY_PATH  # the account's IAM path: 0.0.2's objects fit in only at path /

    def verdict(self, tags, kind, name, path=LEGACY_PATH):
        """The verdict for one object of ``kind`` named ``name`` whose tags are ``tags`` (a dict) and
        whose IAM path is ``path``."""
        tagged_owner = tags.get(OWNER_KEY)
        if tagged_owner:
            return Verdict.OWN if tagged_owner == self.owner else Verdict.FOREIGN
        if (kind, name) in self.applied:
            return Verdict.OWN
        if tags.get(MANAGED_TAG["Key"]) == MANAGED_TAG["Value"]:
            return Verdict.ADOPT
        if self.legacy and path == LEGACY_PATH == self.iam_path:
            return Verdict.ADOPT  # what akeru-cloud-access 0.0.2 created for this row
        return Verdict.FOREIGN

    def verdicts(self, observed):
        """``[(kind, what, Verdict, tagged_owner)]`` for every object IAM holds under ``observed``'s
        name. The policy's tags must have been read (``observed.policy.tags`` not None) unless this row
        applied it."""
        name, found = observed.name, []
        principal = USER if observed.is_user else ROLE
        principal_verdict = None
        if observed.exists:
            principal_verdict = self.verdict(observed.tags, principal, name, observed.path)
            found.append((principal, f"IAM {principal} {name!r}", principal_verdict, observed.tags.get(OWNER_KEY)))
        if observed.policy is not None:
            tags = observed.policy.tags
            if tags is None and (POLICY, name) not in self.applied:
                verdict = Verdict.FOREIGN  # unread tags never prove ownership
            else:
                verdict = self.verdict(tags or {}, POLICY, name, _policy_path(observed.policy.arn, name))
            found.append((POLICY, f"managed policy {observed.policy.arn}", verdict, (tags or {}).get(OWNER_KEY)))
        if observed.is_user and observed.group is not None:
            if principal_verdict is not None and principal_verdict is not Verdict.FOREIGN:
                verdict = principal_verdict  # groups take no tags: the same-named user speaks for it
            else:
                verdict = Verdict.OWN if (GROUP, name) in self.applied else Verdict.FOREIGN
            found.append((GROUP, f"IAM group {name!r}", verdict, None))
        if not observed.is_user and observed.instance_profile_roles is not None:
            tags = observed.instance_profile_tags or {}
            found.append((INSTANCE_PROFILE, f"instance profile {name!r}", self.verdict(tags, INSTANCE_PROFILE, name),
                          tags.get(OWNER_KEY)))
        return found

    def refusal(self, observed):
        """The sentence refusing a sync whose plan would touch objects this row may not adopt, or None."""
        foreign = [(what, owner) for _, what, verdict, owner in self.verdicts(observed) if verdict is Verdict.FOREIGN]
        if not foreign:
            return None
        key, value = MANAGED_TAG["Key"], MANAGED_TAG["Value"]
        untagged = [what for what, owner in foreign if not owner]
        claimed = [f"{what} (akeru:owner={owner})" for what, owner in foreign if owner]
        sentences = []
        if untagged and self.legacy:
            sentences.append(
                f"{' and '.join(untagged)} cannot be what akeru-cloud-access 0.0.2 created for this principal "
                f"(0.0.2 created its objects at path {LEGACY_PATH}, and the account's IAM path, here "
                f"{self.iam_path}, must be {LEGACY_PATH} to adopt them); Akeru will not take "
                f"{'it' if len(untagged) == 1 else 'them'} over. Tag "
                f"{'it' if len(untagged) == 1 else 'them'} {key}={value} to adopt, or choose another name."
            )
            untagged = []
        if untagged:
            one = len(untagged) == 1
            sentences.append(
                f"{' and '.join(untagged)} already exist{'s' if one else ''} and {'is' if one else 'are'} not managed "
                f"by Akeru (no {key}={value} tag); Akeru will not take over IAM objects it did not create. Tag "
                f"{'it' if one else 'them'} {key}={value} to adopt {'it' if one else 'them'}, or choose another name."
            )
        if claimed:
            sentences.append(
                f"{' and '.join(claimed)} belong{'s' if len(claimed) == 1 else ''} to another Akeru principal "
                f"(this one is {OWNER_KEY}={self.owner}); choose another name, or delete or rename the other first."
            )
        return " ".join(sentences)

    def owned_part(self, observed):
        """A copy of ``observed`` without the objects this row does not own: what a teardown may delete."""
        keep = {kind for kind, _, verdict, _ in self.verdicts(observed) if verdict is Verdict.OWN}
        changes = {}
        principal = USER if observed.is_user else ROLE
        if observed.exists and principal not in keep:
            changes.update(exists=False, attached=[], inline=[], groups=[], access_keys=[], login_profile=False,
                           mfa_devices=[], instance_profiles=[])
        if observed.policy is not None and POLICY not in keep:
            changes["policy"] = None
        if observed.group is not None and GROUP not in keep:
            changes["group"] = None
        if observed.instance_profile_roles is not None and INSTANCE_PROFILE not in keep:
            changes.update(instance_profile_roles=None, instance_profile_tags=None)
        return replace(observed, **changes) if changes else observed


def _policy_path(arn, name):
    """The IAM path of a managed policy, from its ARN (``arn:…:policy{path}{name}``)."""
    resource = arn.split(":", 5)[-1]  # policy/path/name
    return resource[len("policy"):-len(name)] if resource.endswith(name) else resource


def applied_objects(applied_name, applied_user, applied_ec2):
    """``{(type, name)}`` of what a row applied, from its ``applied_*`` columns."""
    if not applied_name or applied_user is None:
        return frozenset()
    if applied_user:
        return frozenset({(USER, applied_name), (GROUP, applied_name), (POLICY, applied_name)})
    objects = {(ROLE, applied_name), (POLICY, applied_name)}
    if applied_ec2:
        objects.add((INSTANCE_PROFILE, applied_name))
    return frozenset(objects)


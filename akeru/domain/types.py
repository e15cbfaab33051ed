"""The IAM domain's types: what Akeru wants (``Desired``), what IAM holds (``Observed*``), what to do
about it (``Action``), and the names and tags every object Akeru makes carries. Pure: standard
library only.

``Desired`` is what an ``AWSRole`` row and its rendered template say IAM should hold;
``ObservedPrincipal`` is what IAM holds (read by ``akeru.aws.observe``, one principal at a time
or from a whole-account snapshot). An ``Action`` names the IAM API operation the executor calls
and its parameters, plus a sentence saying why — so a plan can be shown, stored and audited.
"""

from dataclasses import asdict, dataclass, field
from enum import Enum

MANAGED_TAG = {"Key": "akeru:managed", "Value": "true"}
OWNER_KEY = "akeru:owner"  # + the uid of the AWSRole row that owns the object (see akeru.domain.ownership)
POLICY_DESCRIPTION = "Managed by Akeru for "  # + the principal's name; how orphans are recognised
# The inline policy AWS's own "Revoke active sessions" writes; Akeru writes the same one.
REVOKE_POLICY_NAME = "AWSRevokeOlderSessions"
# The inline policy that lets an IAM-user principal's own key call GetFederationToken (vending).
FEDERATION_POLICY_NAME = "AkeruGetFederationToken"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def is_managed(tags):
    """Whether IAM tags (as a dict) carry Akeru's ``akeru:managed=true``."""
    return tags.get(MANAGED_TAG["Key"]) == MANAGED_TAG["Value"]


def is_akerus(tags):
    """Whether IAM tags (as a dict) say Akeru made the object (``akeru:managed`` or ``akeru:owner``)."""
    return is_managed(tags) or bool(tags.get(OWNER_KEY))


class Kind(str, Enum):
    ROLE = "role"
    EC2 = "ec2"
    LAMBDA = "lambda"
    USER = "user"

    @property
    def is_user(self):
        return self is Kind.USER


@dataclass(frozen=True)
class Desired:
    name: str
    kind: Kind
    policy: dict
    trust: dict | None
    account_id: str
    partition: str = "aws"
    path: str = "/"
    description: str = ""
    max_session_duration: int = 3600
    owner: str = ""  # the owning row's uid, tagged as akeru:owner on everything created
    permissions_boundary: str = ""  # ARN of the managed policy every principal is bounded by; "": none
    revoke_sessions_before: str = ""  # TIME_FORMAT; credentials issued before it are denied; "": none
    federation_policy: dict | None = None  # IAM users: the inline policy allowing GetFederationToken
    extra_tags: tuple = ()  # ((key, value), …) beside Akeru's own: a purpose-built role's request and requester

    @property
    def tags(self):
        """The tags every object Akeru creates for this principal carries."""
        return ([MANAGED_TAG] + ([{"Key": OWNER_KEY, "Value": self.owner}] if self.owner else [])
                + [{"Key": key, "Value": value} for key, value in self.extra_tags])

    def tagged(self, tags):
        """Whether observed ``tags`` (a dict) carry every one of ``self.tags``."""
        return all(tags.get(t["Key"]) == t["Value"] for t in self.tags)

    @property
    def policy_arn(self):
        return policy_arn(self.partition, self.account_id, self.path, self.name)

    @property
    def arn(self):
        kind = "user" if self.kind.is_user else "role"
        return f"arn:{self.partition}:iam::{self.account_id}:{kind}{self.path}{self.name}"


def policy_arn(partition, account_id, path, name):
    return f"arn:{partition}:iam::{account_id}:policy{path}{name}"


@dataclass
class ObservedPolicy:
    arn: str
    default_version_id: str
    document: dict | None
    versions: list = field(default_factory=list)  # [(version_id, is_default, created_iso)]
    attachments: list | None = None  # [(entity_type, name)] when observed for teardown
    description: str = ""
    tags: dict | None = None  # None: not read (snapshots and steady-state syncs skip ListPolicyTags)


@dataclass
class ObservedGroup:
    name: str
    attached: list = field(default_factory=list)
    inline: list = field(default_factory=list)
    members: list | None = None


@dataclass
class ObservedPrincipal:
    """IAM's view of one name. ``is_user`` says which IAM type was looked up."""

    name: str
    is_user: bool
    exists: bool = False
    arn: str = ""
    path: str = "/"
    trust: dict | None = None
    max_session_duration: int | None = None  # None: not observed (snapshots lack it)
    description: str | None = None
    tags: dict = field(default_factory=dict)
    attached: list = field(default_factory=list)
    inline: list = field(default_factory=list)
    policy: ObservedPolicy | None = None
    instance_profile_roles: list | None = None  # roles in the same-named instance profile; None: no profile
    instance_profile_tags: dict | None = None  # tags of the same-named instance profile
    instance_profiles: list = field(default_factory=list)  # every profile holding this role
    group: ObservedGroup | None = None  # the same-named group (users)
    groups: list = field(default_factory=list)  # groups the user is a member of
    access_keys: list = field(default_factory=list)
    login_profile: bool = False
    mfa_devices: list = field(default_factory=list)
    permissions_boundary: str = ""  # the boundary's ARN; "": none
    revoke_policy: dict | None = None  # the document of the inline REVOKE_POLICY_NAME, when there is one
    federation_policy: dict | None = None  # the document of the inline FEDERATION_POLICY_NAME, when there is one


@dataclass(frozen=True)
class Action:
    op: str  # the boto3 IAM client method the executor calls
    params: dict
    reason: str

    def as_dict(self):
        return asdict(self)

    def __str__(self):
        target = next(
            (str(self.params[k]) for k in ("RoleName", "UserName", "GroupName", "InstanceProfileName", "PolicyName", "PolicyArn") if k in self.params),
            "",
        )
        return f"{self.op}({target}): {self.reason}"


def revoke_document(before):
    """AWS's standard deny for credentials issued before ``before`` (a TIME_FORMAT string)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": ["*"], "Resource": ["*"],
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}},
    }]}


def federation_document(partition, account_id):
    """What an IAM-user principal's key needs to vend: GetFederationToken (federated users get the
    intersection of the user's policies and the session policy, so this grants them nothing)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:GetFederationToken",
        "Resource": f"arn:{partition}:sts::{account_id}:federated-user/*",
    }]}

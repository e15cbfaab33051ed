"""A principal carried over from akeru-cloud-access 0.0.2 adopts the IAM objects 0.0.2 created."""

import json

import pytest
from django.conf import settings

from akeru.models import AccessKey, AWSRole, Status, SyncRun, UpgradeNote
from akeru.reconcile.principal import sync
from akeru.settings.accessor import akeru_settings
from tests.fixtures.documents import BASIC_POLICY
from tests.helpers.aws import make_role, policy_arn
from tests.legacy002 import create_like_002

PLAIN_POLICY = {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}


def legacy_row(name, **fields):
    """A row as migration 0003 leaves a valid 0.0.2 principal."""
    return make_role(name, imported=True, adopt_legacy=True, **fields)


def ours(role):
    return {"akeru:managed": "true", "akeru:owner": str(role.uid)}


def ops(run):
    return [a["op"] for a in run.actions]


@pytest.fixture
def account(mockaws):
    mockaws.put_template("template-plain", PLAIN_POLICY)
    mockaws.put_template("template-basic", BASIC_POLICY)
    return mockaws


@pytest.mark.django_db
def test_a_002_role_is_adopted_in_place_with_the_fewest_changes(account):
    iam = account.iam
    create_like_002(iam, "deployer", PLAIN_POLICY, trust=json.loads(settings.DEFAULT_TRUST_POLICY))
    before = iam.get_role(RoleName="deployer")["Role"]
    role = legacy_row("deployer", policy="template-plain")

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.SYNCED, role.last_error
    assert role.arn == before["Arn"] and not role.adopt_legacy
    after = iam.get_role(RoleName="deployer")["Role"]
    assert after["RoleId"] == before["RoleId"]  # the same role, not a new one of the same name
    # Tagged, session length from ASSUMED_ROLE_TIMEOUT (0.0.2 set 2 h); the unchanged policy keeps its version.
    assert sorted(ops(run)) == ["tag_policy", "tag_role", "update_role"]
    assert account.tags("role", "deployer") == ours(role)
    assert account.tags("policy", "deployer") == ours(role)
    assert [v["VersionId"] for v in account.policy_versions("deployer")] == ["v1"]
    assert account.role_policies("deployer") == [policy_arn("deployer")]
    assert UpgradeNote.objects.get(subject="deployer").message == (
        "adopted the IAM objects 0.0.2 created: IAM role 'deployer', managed policy " + policy_arn("deployer"))

    again = sync(role.pk, force=True)
    assert again.outcome == SyncRun.Outcome.NOOP


@pytest.mark.django_db
def test_a_002_user_keeps_its_user_group_and_keys(account):
    iam = account.iam
    keys = create_like_002(iam, "ci-bot", BASIC_POLICY, user=True, keys=2)
    before = iam.get_user(UserName="ci-bot")["User"]
    role = legacy_row("ci-bot", user=True)
    for key_id, secret in keys:
        import_key(role, key_id, secret)

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.SYNCED, role.last_error
    assert role.arn == before["Arn"] and iam.get_user(UserName="ci-bot")["User"]["UserId"] == before["UserId"]
    # The template renders ${name}: one new policy version, set as default; nothing deleted.
    # put_user_policy: the inline policy that lets the user's key call GetFederationToken (vending)
    assert sorted(ops(run)) == ["create_policy_version", "put_user_policy", "tag_policy", "tag_user"]
    assert [v["VersionId"] for v in account.policy_versions("ci-bot")] == ["v2", "v1"] or \
        sorted(v["VersionId"] for v in account.policy_versions("ci-bot")) == ["v1", "v2"]
    assert account.group_policies("ci-bot") == [policy_arn("ci-bot")] and account.groups_of("ci-bot") == ["ci-bot"]
    assert sorted(k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci-bot")["AccessKeyMetadata"]) == \
        sorted(k for k, _ in keys)


@pytest.mark.django_db
def test_a_002_ec2_role_gets_its_role_into_the_empty_profile_0_0_2_left(account):
    iam = account.iam
    create_like_002(iam, "web-app", PLAIN_POLICY, trust=json.loads(akeru_settings.EC2_TRUST_POLICY), ec2=True)
    role = legacy_row("web-app", policy="template-plain", ec2=True)

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.SYNCED, role.last_error
    assert sorted(ops(run)) == ["add_role_to_instance_profile", "tag_instance_profile", "tag_policy", "tag_role",
                                "update_role"]
    assert account.instance_profile_roles("web-app") == ["web-app"]
    assert account.tags("instance-profile", "web-app") == ours(role)


@pytest.mark.django_db
def test_a_role_0_0_2_cannot_have_created_is_still_refused(account):
    iam = account.iam
    trust = settings.DEFAULT_TRUST_POLICY
    iam.create_role(RoleName="payments", Path="/team/", AssumeRolePolicyDocument=trust)
    role = legacy_row("payments", policy="template-plain")

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.FAILED and role.adopt_legacy
    assert "IAM role 'payments' cannot be what akeru-cloud-access 0.0.2 created" in role.last_error
    assert "path /" in role.last_error
    assert run.actions == []
    assert account.tags("role", "payments") == {} and not account.exists("policy", "payments")


@pytest.mark.django_db
def test_0_0_2_objects_are_not_adopted_into_an_account_with_another_iam_path(account):
    create_like_002(account.iam, "deployer", PLAIN_POLICY, trust=json.loads(akeru_settings.DEFAULT_TRUST_POLICY))
    role = legacy_row("deployer", policy="template-plain")
    role.get_account().__class__.objects.filter(pk=role.get_account().pk).update(iam_path="/akeru/")

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.FAILED and role.adopt_legacy
    assert "IAM role 'deployer' cannot be what akeru-cloud-access 0.0.2 created" in role.last_error
    assert "here /akeru/, must be /" in role.last_error
    assert run.actions == [] and account.tags("role", "deployer") == {}


@pytest.mark.django_db
def test_without_the_adoption_flag_0_0_2_objects_are_refused_as_before(account):
    create_like_002(account.iam, "deployer", PLAIN_POLICY, trust=json.loads(settings.DEFAULT_TRUST_POLICY))
    role = make_role("deployer", policy="template-plain")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.FAILED and "not managed by Akeru" in role.last_error
    assert account.tags("role", "deployer") == {}


@pytest.mark.django_db
def test_objects_deleted_behind_0_0_2s_back_are_created_anew_and_reported(account):
    role = legacy_row("gone", policy="template-plain")
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    assert account.tags("role", "gone") == ours(role)
    assert "no longer exist" in UpgradeNote.objects.get(subject="gone").message


@pytest.mark.django_db
def test_a_row_held_for_review_leaves_iam_alone_until_saved(account):
    create_like_002(account.iam, "Deploy", PLAIN_POLICY, trust=json.loads(settings.DEFAULT_TRUST_POLICY))
    role = legacy_row("Deploy", policy="template-plain")
    AWSRole.objects.filter(pk=role.pk).update(
        status=Status.FAILED, needs_review=True,
        last_error="Carried over from akeru-cloud-access 0.0.2, but its name is shared…")
    run = sync(role.pk, force=True)
    role.refresh_from_db()
    assert run.outcome == SyncRun.Outcome.FAILED and "held for review" in run.error
    assert role.status == Status.FAILED and role.last_error.startswith("Carried over")
    assert account.tags("role", "Deploy") == {}

    from akeru import services

    services.request_sync([role.pk])  # what the admin's save does
    sync(role.pk)
    role.refresh_from_db()
    assert role.status == Status.SYNCED and not role.needs_review
    assert account.tags("role", "Deploy") == ours(role)
    assert AWSRole.objects.get(pk=role.pk).arn.endswith(":role/Deploy")


def import_key(role, key_id, secret):
    """What migration 0006 leaves for one of 0.0.2's plaintext keys."""
    key = AccessKey(principal=role, user_name=role.name, access_key_id=key_id, state=AccessKey.State.IMPORTED)
    key.set_secret(secret)
    key.save()
    return key


def key_states(account, user):
    return {k["AccessKeyId"]: k["Status"] for k in account.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]}


@pytest.mark.django_db
def test_the_newest_0_0_2_key_still_in_iam_is_used_and_rotation_retires_the_rest(account, settings):
    iam = account.iam
    (old_id, old_secret), (new_id, new_secret) = create_like_002(iam, "ci-bot", BASIC_POLICY, user=True, keys=2)
    role = legacy_row("ci-bot", user=True)
    # Imported in grant order; the newer key's grant came first, so the choice must follow IAM's dates.
    import_key(role, new_id, new_secret)
    import_key(role, old_id, old_secret)
    newest = max(iam.list_access_keys(UserName="ci-bot")["AccessKeyMetadata"], key=lambda k: k["CreateDate"])
    assert newest["AccessKeyId"] == new_id

    run = sync(role.pk)
    role.refresh_from_db()

    assert role.status == Status.SYNCED, role.last_error
    assert not any(a["op"].startswith("delete") for a in run.actions)
    current = AccessKey.objects.current(role)
    assert current.access_key_id == new_id and current.reveal() == new_secret
    other = AccessKey.objects.get(access_key_id=old_id)
    assert other.state == AccessKey.State.IMPORTED and "next rotation" in other.note
    assert key_states(account, "ci-bot") == {new_id: "Active", old_id: "Active"}  # people may still use it

    from akeru.reconcile import keys

    keys.rotate(role.pk)  # the periodic pass; the key in use is not due
    assert AccessKey.objects.current(role).access_key_id == new_id
    assert key_states(account, "ci-bot") == {new_id: "Active", old_id: "Inactive"}
    settings.AKERU_KEY_GRACE_SECONDS = 0
    keys.rotate(role.pk)  # grace over
    assert key_states(account, "ci-bot") == {new_id: "Active"}
    assert AccessKey.objects.get(access_key_id=old_id).state == AccessKey.State.DELETED
    assert AccessKey.objects.get(access_key_id=old_id).encrypted_secret == ""


@pytest.mark.django_db
def test_an_imported_key_deleted_in_iam_is_forgotten_and_the_survivor_used(account):
    iam = account.iam
    (gone_id, gone_secret), (kept_id, kept_secret) = create_like_002(iam, "ci-bot", BASIC_POLICY, user=True, keys=2)
    role = legacy_row("ci-bot", user=True)
    import_key(role, gone_id, gone_secret)
    import_key(role, kept_id, kept_secret)
    iam.delete_access_key(UserName="ci-bot", AccessKeyId=gone_id)

    sync(role.pk)

    assert AccessKey.objects.current(role).access_key_id == kept_id
    gone = AccessKey.objects.get(access_key_id=gone_id)
    assert gone.state == AccessKey.State.DELETED and gone.encrypted_secret == ""

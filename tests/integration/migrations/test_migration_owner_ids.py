"""The owner-id migration: every existing row gets its own id, and names that differ only in case are
refused with a message saying which, before the case-insensitive constraint would fail obscurely."""

import pytest

from tests.helpers.migrations import latest, migrate

BEFORE = [("akeru", "0008_scrub_002_plaintext_keys")]
OWNER_IDS = [("akeru", "0009_owner_id_and_case_insensitive_names")]


@pytest.fixture
def before_owner_ids(transactional_db):
    apps = migrate(BEFORE)
    yield apps.get_model("akeru", "AWSRole")
    migrate(latest(None))


def test_existing_rows_each_get_their_own_owner_id(before_owner_ids):
    for name in ("a", "b", "c"):
        before_owner_ids.objects.create(name=name, policy="template-basic")
    AWSRole = migrate(OWNER_IDS).get_model("akeru", "AWSRole")
    uids = list(AWSRole.objects.values_list("uid", flat=True))
    assert len(set(uids)) == 3 and None not in uids


def test_names_differing_only_in_case_stop_the_migration_naming_them(before_owner_ids):
    before_owner_ids.objects.create(name="Alice", policy="template-basic")
    before_owner_ids.objects.create(name="alice", policy="template-basic")
    with pytest.raises(RuntimeError, match="names differ only in case name the same IAM object: 'Alice' and 'alice'"):
        migrate(OWNER_IDS)
    before_owner_ids.objects.filter(name="alice").delete()  # the operator renames or deletes one
    migrate(BEFORE)

"""The principal status machine: every (from, to) pair of ``STATUS_TRANSITIONS``, through the one helper
that writes it."""

import pytest

from akeru.models import STATUS_TRANSITIONS, AWSRole, Status

PAIRS = [(before, after) for before in Status for after in Status]


def test_the_table_names_every_status():
    assert set(STATUS_TRANSITIONS) == set(Status)
    assert all(allowed <= set(Status) for allowed in STATUS_TRANSITIONS.values())


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{b}->{a}" for b, a in PAIRS])
def test_transition_moves_a_principal_only_where_the_table_allows(before, after):
    role = AWSRole.objects.create(name="walker", policy="template-a")
    AWSRole.objects.filter(pk=role.pk).update(status=before, last_error="before")
    allowed = after in STATUS_TRANSITIONS[before]

    moved = AWSRole.objects.filter(pk=role.pk).transition(after, last_error="moved")

    role.refresh_from_db()
    assert moved == (1 if allowed else 0)
    assert (role.status, role.last_error) == ((after, "moved") if allowed else (before, "before"))

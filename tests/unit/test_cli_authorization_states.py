"""The sign-in state machine of ``akeru login``: every (from, to) pair of ``CLI_STATE_TRANSITIONS``, through
the one helper that writes it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from akeru.models import CLI_STATE_TRANSITIONS, CliAuthorization

State = CliAuthorization.State
PAIRS = [(before, after) for before in State for after in State]


def test_the_table_names_every_state():
    assert set(CLI_STATE_TRANSITIONS) == set(State)
    assert all(allowed <= set(State) for allowed in CLI_STATE_TRANSITIONS.values())


@pytest.mark.django_db
@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{b}->{a}" for b, a in PAIRS])
def test_transition_moves_a_sign_in_only_where_the_table_allows(before, after):
    row = CliAuthorization.objects.create(flow=CliAuthorization.Flow.DEVICE, client_id="akeru-cli", state=before,
                                          expires_at=timezone.now() + timedelta(minutes=10))
    allowed = after in CLI_STATE_TRANSITIONS[before]
    at = timezone.now()

    moved = CliAuthorization.objects.filter(pk=row.pk).transition(after, decided_at=at)

    row.refresh_from_db()
    assert moved == (1 if allowed else 0)
    assert (row.state, row.decided_at) == ((after, at) if allowed else (before, None))

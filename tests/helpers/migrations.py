"""Moving the test database along the migration graph (tests of data migrations)."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets):
    """Migrate to ``targets`` ([(app, migration)]); returns the historical apps at that point."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest(app="akeru"):
    """The leaf migrations of ``app`` (None: of every app), to migrate back to the present."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes(app)

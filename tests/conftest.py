"""The fixtures every test directory sees, as plugins (a test never imports a fixture by hand):

``tests.fixtures.live``     the subprocess stack: Redis, moto_server, ``aws``, Celery worker, sign-in
                            stand-in, ``wait_until``; marks the tests that use it ``live``
``tests.fixtures.aws``      in-process moto: ``mockaws``, ``mockaws_managed``, ``account``, ``accounts``,
                            ``aws_calls``
``tests.fixtures.access``   ``world`` and ``sts_proxy`` of the /access/ tests
``tests.fixtures.upgrade``  ``legacy``: 0.0.2 databases
``tests.fixtures.logs``     ``json_logs``: this process logs as ``AKERU_LOG_FORMAT=json`` does, into a buffer
``tests.fixtures.cli``      ``laptop``: alice with a token on a laptop of her own, for the ``akeru`` command line
``tests.fixtures.idp``      ``idp``: the local OpenID Connect provider (devtools/idp.py), Akeru configured for it
``tests.fixtures.webhooks`` ``receiver``: a webhook receiver checking signatures; ``eager_tasks``
``tests.fixtures.slack``    ``slack``: the Slack stand-in (devtools/slack.py), Akeru configured for it
``tests.fixtures.oncall``   ``oncall``: the on-call schedule stand-in (devtools/oncall.py), Akeru configured for it
``tests.fixtures.ledger``   ``trail``, ``trail_queue``: synthetic CloudTrail in moto (devtools/cloudtrail.py);
                            ``vended``: alice's credentials for ``dev`` vended through /access/
``tests.fixtures.rightsizing`` ``iam_proxy``: canned IAM last-accessed answers (devtools/stsproxy.py);
                            ``wide_dev``: a ``template-dev`` that grants more than is used

Plain helpers are imported from tests/helpers/; shared documents from tests/fixtures/documents.py.
"""

# Old import paths (``from tests.conftest import module_worker``), for one release (removed in 0.3).
from tests.helpers.live import REPO, CeleryWorker, database_url, module_worker  # noqa: F401
from tests.helpers.live import use_broker as _use_broker  # noqa: F401

pytest_plugins = ["tests.fixtures.live", "tests.fixtures.aws", "tests.fixtures.access", "tests.fixtures.upgrade",
                  "tests.fixtures.logs", "tests.fixtures.idp", "tests.fixtures.cli", "tests.fixtures.webhooks",
                  "tests.fixtures.slack", "tests.fixtures.oncall",
                  "tests.fixtures.ledger", "tests.fixtures.rightsizing", "tests.fixtures.demo"]

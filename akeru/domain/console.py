"""Where a console sign-in lands: a service's page and a region, on the partition's console host only.

A caller (the API, the ``akeru console --service s3 --region eu-west-1`` command) names a service and a
region; it never gives a URL. The destination is built here on the console home the caller passes in (the
partition's, or the operator's ``AKERU_CONSOLE_URL``), so a console sign-in can never be sent to another
host: an open redirect carrying a freshly signed-in session would be a gift to a phisher.
"""

import re
from urllib.parse import urlencode

SERVICE = re.compile(r"[a-z0-9-]{1,40}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def destination_problems(service=None, region=None):
    """Every problem with ``service`` and ``region`` at once, by field (empty: both usable; either may be
    None or empty, meaning "not asked for")."""
    problems = {}
    if service and not SERVICE.fullmatch(service):
        problems["service"] = ("A console service is 1 to 40 lower-case letters, digits or dashes, as in the "
                               "console's own URLs (s3, ec2, cloudwatch).")
    if region and not REGION.fullmatch(region):
        problems["region"] = "A region looks like us-east-1 or eu-west-2."
    return problems


def console_destination(home, service=None, region=None):
    """The console URL for ``service`` in ``region`` on ``home`` (the console home, ending in ``/``):
    ``https://console.aws.amazon.com/s3/home?region=eu-west-1``; ``home`` itself when neither is given.
    Raises ``ValueError`` (naming every problem) for a service or region that is not one."""
    problems = destination_problems(service, region)
    if problems:
        raise ValueError(" ".join(problems.values()))
    if not service and not region:
        return home
    base = home if home.endswith("/") else home + "/"
    path = f"{service or 'console'}/home"
    return f"{base}{path}" + (f"?{urlencode({'region': region})}" if region else "")

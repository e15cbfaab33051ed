"""S3 template listing and ETag-conditional fetching."""

from dataclasses import dataclass

from botocore.exceptions import ClientError

from akeru.domain.reasons import Reason
from akeru.settings.accessor import akeru_settings

from . import clients
from .errors import Terminal, classify, error_code


class TemplateMissing(Terminal):
    """The template object does not exist (as opposed to an unreadable bucket or object)."""

    reason = Reason.TEMPLATE_INVALID


@dataclass
class ListedTemplate:
    name: str
    key: str
    etag: str
    size: int
    last_modified: object


def _location():
    return f"s3://{akeru_settings.POLICY_BUCKET}/{akeru_settings.policy_prefix}"


def list_templates(s3=None):
    """Every ``{POLICY_PREFIX}/template-*.json`` directly under the prefix."""
    s3 = s3 or clients.s3()
    prefix = akeru_settings.policy_prefix
    prefix = f"{prefix}/" if prefix else ""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=akeru_settings.POLICY_BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(prefix):]
                if "/" in rest or not rest.startswith("template-") or not rest.endswith(".json"):
                    continue
                found.append(ListedTemplate(rest[: -len(".json")], obj["Key"], obj["ETag"].strip('"'),
                                            obj["Size"], obj["LastModified"]))
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchBucket":
            raise Terminal(f"policy bucket {akeru_settings.POLICY_BUCKET!r} does not exist") from None
        if code in ("AccessDenied", "AllAccessDisabled"):
            raise Terminal(f"access denied listing {_location()}: Akeru's credentials need s3:ListBucket") from None
        raise classify(exc) from None
    except Exception as exc:  # connection errors and friends
        raise classify(exc) from None
    return found


def fetch(key, etag=None, s3=None):
    """Return ``(body, etag)``, or ``(None, etag)`` when the object still has ``etag`` (304)."""
    s3 = s3 or clients.s3()
    kwargs = {"Bucket": akeru_settings.POLICY_BUCKET, "Key": key}
    if etag:
        kwargs["IfNoneMatch"] = f'"{etag}"'
    try:
        response = s3.get_object(**kwargs)
    except ClientError as exc:
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("304", "NotModified") or status == 304:
            return None, etag
        where = f"s3://{akeru_settings.POLICY_BUCKET}/{key}"
        if code in ("NoSuchKey", "404"):
            raise TemplateMissing(f"template {where} does not exist: upload it, or choose another template "
                                  "and save") from None
        if code == "NoSuchBucket":
            raise Terminal(f"policy bucket {akeru_settings.POLICY_BUCKET!r} does not exist") from None
        if code in ("AccessDenied", "403"):
            raise Terminal(f"access denied reading {where}: Akeru's credentials need s3:GetObject") from None
        raise classify(exc) from None
    except Exception as exc:
        raise classify(exc) from None
    body = response["Body"].read()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Terminal(f"template s3://{akeru_settings.POLICY_BUCKET}/{key} is not UTF-8 text",
                       reason=Reason.TEMPLATE_INVALID) from None
    return text, response["ETag"].strip('"')


class TemplateChanged(Terminal):
    """The template object is not the version a write was decided on (S3 answered 412 to ``If-Match``)."""

    reason = Reason.REFUSED


@dataclass
class Written:
    etag: str
    version_id: str


def put(key, text, if_match, s3=None):
    """Write ``text`` as the template object ``key`` — only if it still has ETag ``if_match`` (S3's conditional
    write: nothing is overwritten that changed meanwhile). Returns the new version's ``Written``."""
    s3 = s3 or clients.s3()
    where = f"s3://{akeru_settings.POLICY_BUCKET}/{key}"
    try:
        response = s3.put_object(Bucket=akeru_settings.POLICY_BUCKET, Key=key, Body=text.encode("utf-8"),
                                 ContentType="application/json", IfMatch=f'"{if_match}"')
    except ClientError as exc:
        code = error_code(exc)
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise TemplateChanged(f"template {where} changed since the version {if_match} the change was "
                                  "decided on") from None
        if code in ("NoSuchKey", "404"):
            raise TemplateMissing(f"template {where} no longer exists") from None
        if code in ("AccessDenied", "403"):
            raise Terminal(f"access denied writing {where}: Akeru's credentials need s3:PutObject") from None
        raise classify(exc) from None
    except Exception as exc:
        raise classify(exc) from None
    return Written(response["ETag"].strip('"'), response.get("VersionId") or "")


def current(key, s3=None):
    """``(text, etag)`` of the template object as S3 holds it now (no catalog, no condition)."""
    return fetch(key, None, s3=s3)

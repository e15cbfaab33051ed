"""Reading a CloudTrail trail's log files from S3, and the SQS queue that announces new ones.

A *source* is anything with ``bucket``, ``prefix``, ``organization_id``, ``role_arn``, ``external_id`` and
``queue_url`` (a ``TrailSource`` row). With a ``role_arn`` every call goes through that role (assumed with
Akeru's own credentials, cached and renewed by ``clients``: the log-archive account's reader role); without
one, Akeru's own credentials read the bucket. SSE-KMS log files need nothing here: S3 decrypts them on
GetObject when the reading role may ``kms:Decrypt`` with the trail's key.
"""

import gzip
import io
import zlib
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from akeru.domain.cloudtrail import account_prefix, day_prefix
from akeru.domain.trailfile import NOT_GZIP, UNREADABLE, BadNotification, CorruptFile, iter_records, notification_keys

from . import clients
from .errors import Retryable, Terminal, classify, error_code

CHUNK = 256 * 1024  # decompressed characters parsed at a time


@dataclass(frozen=True)
class _Reader:
    """The target ``clients`` builds a session for: the source's reader role."""

    remote_role_arn: str
    external_id: str


@dataclass(frozen=True)
class Notification:
    """One SQS message: what it announces (``keys``), or why it announces nothing Akeru can read."""

    receipt_handle: str
    keys: tuple
    problem: str = ""


def _client(source, service):
    if source.role_arn:
        return clients.remote_client(service, _Reader(source.role_arn, source.external_id or ""))
    if service == "s3":
        return clients.s3()
    return clients.base_client(service)


def _refused(exc, what, permission):
    """A ClientError as Terminal (it will not get better) or Retryable."""
    code = error_code(exc)
    if code in ("AccessDenied", "AllAccessDisabled", "AccessDeniedException", "KMS.AccessDeniedException"):
        return Terminal(f"access denied {what}: the reader needs {permission}")
    if code == "NoSuchBucket":
        return Terminal(f"{what}: the bucket does not exist")
    if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        return Terminal(f"{what}: the queue does not exist")
    return classify(exc)


def list_regions(source, account_id):
    """The regions a trail has written log files for in ``account_id`` (one delimited listing)."""
    base = account_prefix(source.prefix, source.organization_id, account_id)
    s3 = _client(source, "s3")
    regions = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=base, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                regions.append(common["Prefix"][len(base):].strip("/"))
    except ClientError as exc:
        raise _refused(exc, f"listing s3://{source.bucket}/{base}", "s3:ListBucket") from None
    except BotoCoreError as exc:
        raise classify(exc) from None
    return regions


def list_day(source, account_id, region, day):
    """Yield ``(key, size)`` of every object under one account's, region's and day's prefix (paginated)."""
    prefix = day_prefix(source.prefix, source.organization_id, account_id, region, day)
    s3 = _client(source, "s3")
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], obj.get("Size", 0)
    except ClientError as exc:
        raise _refused(exc, f"listing s3://{source.bucket}/{prefix}", "s3:ListBucket") from None
    except BotoCoreError as exc:
        raise classify(exc) from None


def read_records(source, key, bucket=None):
    """Yield the records of one log file as they are decompressed and parsed (never the whole file parsed
    at once). Raises ``CorruptFile`` (not gzip, not JSON, no Records), ``Terminal`` or ``Retryable``."""
    s3 = _client(source, "s3")
    where = f"s3://{bucket or source.bucket}/{key}"
    try:
        body = s3.get_object(Bucket=bucket or source.bucket, Key=key)["Body"]
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise CorruptFile(UNREADABLE, "the object no longer exists") from None
        raise _refused(exc, f"reading {where}", "s3:GetObject (and kms:Decrypt on the trail's key)") from None
    except BotoCoreError as exc:
        raise classify(exc) from None
    text = io.TextIOWrapper(gzip.GzipFile(fileobj=body, mode="rb"), encoding="utf-8", errors="replace")

    def read():
        try:
            return text.read(CHUNK)
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise CorruptFile(NOT_GZIP, str(exc)[:200]) from None
        except (ClientError, BotoCoreError) as exc:
            raise Retryable(f"reading {where} failed: {exc}") from None

    try:
        yield from iter_records(read)
    finally:
        body.close()


def receive(source, max_messages=10, wait_seconds=0):
    """Up to ``max_messages`` notifications from the source's queue (not deleted: ``delete`` them once their
    objects are read; an undeleted message comes back after its visibility timeout)."""
    sqs = _client(source, "sqs")
    try:
        answer = sqs.receive_message(QueueUrl=source.queue_url, MaxNumberOfMessages=max_messages,
                                     WaitTimeSeconds=wait_seconds)
    except ClientError as exc:
        raise _refused(exc, f"receiving from {source.queue_url}", "sqs:ReceiveMessage") from None
    except BotoCoreError as exc:
        raise classify(exc) from None
    found = []
    for message in answer.get("Messages", []):
        try:
            keys = tuple(notification_keys(message.get("Body", "")))
            found.append(Notification(message["ReceiptHandle"], keys))
        except BadNotification as problem:
            found.append(Notification(message["ReceiptHandle"], (), str(problem)))
    return found


def delete(source, receipt_handles):
    """Delete messages whose objects were read (in batches of ten, SQS's limit)."""
    sqs = _client(source, "sqs")
    handles = list(receipt_handles)
    for start in range(0, len(handles), 10):
        entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(handles[start:start + 10])]
        try:
            sqs.delete_message_batch(QueueUrl=source.queue_url, Entries=entries)
        except ClientError as exc:
            raise _refused(exc, f"deleting from {source.queue_url}", "sqs:DeleteMessage") from None
        except BotoCoreError as exc:
            raise classify(exc) from None

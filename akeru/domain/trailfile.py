"""A CloudTrail log file's body, read record by record, and the S3 notifications that announce new files.

``iter_records(read)`` takes a function returning the next decompressed text chunk ('' at the end) and
yields each element of the top-level ``Records`` array as it is parsed, so a 50 MB log file is never held
parsed whole (one record and one chunk at a time). A body that is not JSON, not an object, or has no
``Records`` array raises ``CorruptFile`` with a reason code (``not_json``, ``no_records``).

``notification_keys(body)`` reads one SQS message body: an S3 event notification (``ObjectCreated:*``),
the same wrapped in an SNS notification, or CloudTrail's own SNS message (``s3ObjectKey``).
"""

import json
from urllib.parse import unquote_plus

NOT_GZIP, NOT_JSON, NO_RECORDS, UNREADABLE = "not_gzip", "not_json", "no_records", "unreadable"
CORRUPT_REASONS = {
    NOT_GZIP: "the object is not gzip-compressed",
    NOT_JSON: "the object is not JSON",
    NO_RECORDS: "the object's JSON has no Records array",
    UNREADABLE: "the object could not be read",
}

_decoder = json.JSONDecoder()
_SPACE = " \t\n\r"


class CorruptFile(ValueError):
    def __init__(self, reason, detail=""):
        self.reason = reason
        super().__init__(f"{CORRUPT_REASONS[reason]}{': ' + detail if detail else ''}")


class _Text:
    """A growing window over the chunks ``read`` returns; ``pos`` is where parsing stands."""

    def __init__(self, read):
        self.read, self.buffer, self.pos, self.done = read, "", 0, False

    def more(self):
        if self.done:
            return False
        chunk = self.read()
        if not chunk:
            self.done = True
            return False
        self.buffer = self.buffer[self.pos:] + chunk  # drop what was parsed already
        self.pos = 0
        return True

    def skip_space(self):
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _SPACE:
                self.pos += 1
            if self.pos < len(self.buffer) or not self.more():
                return

    def peek(self):
        self.skip_space()
        return self.buffer[self.pos] if self.pos < len(self.buffer) else ""

    def expect(self, char):
        if self.peek() != char:
            raise CorruptFile(NOT_JSON, f"expected {char!r}")
        self.pos += 1

    def value(self):
        """The next JSON value, reading more chunks while it is incomplete."""
        self.skip_space()
        while True:
            try:
                value, end = _decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise CorruptFile(NOT_JSON, "truncated or malformed") from None
            if end == len(self.buffer) and not self.done and not isinstance(value, (dict, list, str)):
                # a number (or true/false/null) at the very end of a chunk may go on in the next one
                if self.more():
                    continue
            self.pos = end
            return value


def iter_records(read):
    """Yield each record of a log file's ``{"Records": [...]}`` body, parsing as it reads."""
    text = _Text(read)
    if text.peek() != "{":
        raise CorruptFile(NOT_JSON if text.peek() else NO_RECORDS, "" if text.peek() else "empty")
    text.pos += 1
    found = False
    while text.peek() not in ("}", ""):
        key = text.value()
        if not isinstance(key, str):
            raise CorruptFile(NOT_JSON, "a key is not a string")
        text.expect(":")
        if key == "Records" and text.peek() == "[":
            found = True
            text.pos += 1
            while text.peek() != "]":
                if text.peek() == "":
                    raise CorruptFile(NOT_JSON, "truncated")
                yield text.value()
                if text.peek() == ",":
                    text.pos += 1
            text.pos += 1
        else:
            text.value()  # another top-level member: read and dropped
        if text.peek() == ",":
            text.pos += 1
    if text.peek() == "":
        raise CorruptFile(NOT_JSON, "truncated")
    if not found:
        raise CorruptFile(NO_RECORDS)


class BadNotification(ValueError):
    """An SQS message that announces no S3 object Akeru could read."""


def notification_keys(body):
    """The ``(bucket, key)`` pairs one SQS message announces (``[]`` for S3's ``s3:TestEvent``)."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError):
        raise BadNotification("the message body is not JSON") from None
    if isinstance(message, dict) and message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        try:
            message = json.loads(message["Message"])  # delivered through SNS
        except ValueError:
            raise BadNotification("the SNS message is not JSON") from None
    if not isinstance(message, dict):
        raise BadNotification("the message is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    if isinstance(message.get("s3ObjectKey"), list) and isinstance(message.get("s3Bucket"), str):
        return [(message["s3Bucket"], key) for key in message["s3ObjectKey"] if isinstance(key, str)]
    records = message.get("Records")
    if not isinstance(records, list):
        raise BadNotification("the message is not an S3 event notification")
    found = []
    for record in records:
        if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") if isinstance(record.get("s3"), dict) else {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            found.append((bucket, unquote_plus(key)))  # S3 event keys are URL-encoded
    return found

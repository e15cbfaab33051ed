"""A log file's body read record by record, and the S3 notifications that announce log files."""

import io
import json

import pytest

from akeru.domain.trailfile import (
    NO_RECORDS, NOT_JSON, BadNotification, CorruptFile, iter_records, notification_keys,
)


def reader(text, chunk):
    stream = io.StringIO(text)
    return lambda: stream.read(chunk)


RECORDS = [{"eventID": str(i), "n": i, "nested": {"list": [1, 2, {"x": "}]{["}]}, "f": 1.5} for i in range(50)]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 100000])
@pytest.mark.parametrize("body", [
    json.dumps({"Records": RECORDS}),
    json.dumps({"Records": RECORDS}, indent=2),
    json.dumps({"other": [1, 2, {"a": 3}], "Records": RECORDS, "after": 12345}),
])
def test_records_come_out_one_by_one_whatever_the_chunk_size(body, chunk):
    assert list(iter_records(reader(body, chunk))) == RECORDS


def test_numbers_split_across_chunks():
    body = json.dumps({"Records": [12345678, 3.25, True, None]})
    assert list(iter_records(reader(body, 2))) == [12345678, 3.25, True, None]


@pytest.mark.parametrize("body, reason", [
    ("not json at all", NOT_JSON),
    ("[1, 2]", NOT_JSON),
    ('{"Records": [{"eventID": "1"}, {"eventID": ', NOT_JSON),
    ('{"Records": [{"eventID": "1"}]', NOT_JSON),
    ('{"records": []}', NO_RECORDS),
    ('{"Records": {}}', NO_RECORDS),
    ("", NO_RECORDS),
])
def test_corrupt_bodies(body, reason):
    with pytest.raises(CorruptFile) as caught:
        list(iter_records(reader(body, 5)))
    assert caught.value.reason == reason


def test_empty_records():
    assert list(iter_records(reader('{"Records": []}', 4))) == []


S3_EVENT = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {
    "bucket": {"name": "trail-bucket"},
    "object": {"key": "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/12/02/a%3Ab+c.json.gz", "size": 10}}},
    {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {
        "bucket": {"name": "trail-bucket"}, "object": {"key": "gone"}}}]}


@pytest.mark.parametrize("body, keys", [
    (json.dumps(S3_EVENT), [("trail-bucket", "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/12/02/a:b c.json.gz")]),
    (json.dumps({"Type": "Notification", "Message": json.dumps(S3_EVENT)}),
     [("trail-bucket", "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/12/02/a:b c.json.gz")]),
    (json.dumps({"Type": "Notification", "Message": json.dumps({"s3Bucket": "b", "s3ObjectKey": ["k1", "k2"]})}),
     [("b", "k1"), ("b", "k2")]),
    (json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}), []),
])
def test_notifications(body, keys):
    assert notification_keys(body) == keys


@pytest.mark.parametrize("body", ["nope", "[]", json.dumps({"Type": "Notification", "Message": "nope"}),
                                  json.dumps({"hello": 1})])
def test_bad_notifications(body):
    with pytest.raises(BadNotification):
        notification_keys(body)

"""Console destinations (akeru.domain.console): a service and a region, only ever on the console home given."""

import pytest

from akeru.domain.console import console_destination, destination_problems

HOME = "https://console.aws.amazon.com/"


@pytest.mark.parametrize("service, region, expected", [
    (None, None, HOME),
    ("", "", HOME),
    ("s3", None, "https://console.aws.amazon.com/s3/home"),
    ("s3", "eu-west-1", "https://console.aws.amazon.com/s3/home?region=eu-west-1"),
    (None, "us-gov-west-1", "https://console.aws.amazon.com/console/home?region=us-gov-west-1"),
    ("cloudwatch", "ap-southeast-2", "https://console.aws.amazon.com/cloudwatch/home?region=ap-southeast-2"),
])
def test_destinations_are_built_on_the_home_given(service, region, expected):
    assert console_destination(HOME, service, region) == expected


def test_a_home_without_its_slash_gets_one():
    assert console_destination("https://console.amazonaws.cn", "ec2", "cn-north-1") == \
        "https://console.amazonaws.cn/ec2/home?region=cn-north-1"


@pytest.mark.parametrize("service, region, fields", [
    ("S3", None, {"service"}),
    ("s3/../../evil", None, {"service"}),
    ("https://evil.example", None, {"service"}),
    ("a" * 41, None, {"service"}),
    ("s3?x=1", None, {"service"}),
    (None, "moon-1", {"region"}),
    (None, "us-east-1&Destination=https://evil.example", {"region"}),
    (None, "US-EAST-1", {"region"}),
    ("s 3", "eu-west", {"service", "region"}),  # every problem at once
])
def test_bad_services_and_regions_are_refused_each_by_field(service, region, fields):
    assert set(destination_problems(service, region)) == fields
    with pytest.raises(ValueError):
        console_destination(HOME, service, region)

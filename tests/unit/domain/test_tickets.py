"""Ticket patterns and link templates of a request policy: which are refused, what matches, the links built."""

import pytest

from akeru.domain.tickets import (
    PATTERN_MAX, TICKET_INPUT_MAX, pattern_problems, ticket_matches, ticket_url, url_template_problems,
)


@pytest.mark.parametrize("pattern", [
    "", r"^[A-Z]+-\d+$", r"(?:OPS|INC|CHG)-\d{1,6}", r"(?:[A-Z]+-)?\d+", r"((?:a|b)c)+", r"#\d+", "x" * PATTERN_MAX,
])
def test_simple_patterns_are_accepted(pattern):
    assert pattern_problems(pattern) == []


@pytest.mark.parametrize("pattern, words", [
    ("[A-Z", "not a regular expression"),
    ("a{2,1}", "not a regular expression"),
    ("x" * (PATTERN_MAX + 1), f"at most {PATTERN_MAX}"),
    (r"(a+)+$", "repeats something that is itself repeated"),
    (r"(\d*)*", "repeats something that is itself repeated"),
    (r"(?:x(?:a+)b)+", "repeats something that is itself repeated"),
    (r"(?>a+)+", "repeats something that is itself repeated"),
    (r"(a|ab)*c", "repeats a group of alternatives"),
    (r"(\w)\1", "back-reference"),
])
def test_risky_or_broken_patterns_are_refused(pattern, words):
    problems = pattern_problems(pattern)
    assert len(problems) == 1 and words in problems[0]


@pytest.mark.parametrize("pattern, ticket, matches", [
    (r"^[A-Z]+-\d+$", "OPS-12", True),
    (r"^[A-Z]+-\d+$", "ops-12", False),
    (r"[A-Z]+-\d+", "see OPS-12", False),  # the whole ticket, anchored or not
    (r"\d+", "1" * TICKET_INPUT_MAX, True),
    (r"\d+", "1" * (TICKET_INPUT_MAX + 1), False),
    (r"(a+)+$", "aaa", False),  # a refused pattern matches nothing
])
def test_the_whole_ticket_must_match(pattern, ticket, matches):
    assert ticket_matches(pattern, ticket) is matches


@pytest.mark.parametrize("template, words", [
    ("https://jira.example.com/browse/{ticket}", None),
    ("https://tickets.example.com/?id={ticket}&view=1", None),
    ("", None),
    ("http://jira.example.com/browse/{ticket}", "https://"),
    ("javascript:alert(1)//{ticket}", "https://"),
    ("https:///{ticket}", "https://"),
    ("https://jira.example.com/browse/", "exactly one {ticket}"),
    ("https://jira.example.com/{ticket}/{ticket}", "exactly one {ticket}"),
    ("https://{ticket}.example.com/", "not in its host"),
    ("https://jira.example.com/browse/{ticket} x", "spaces"),
    ("https://j.example.com/" + "a" * 500 + "{ticket}", "at most 500"),
])
def test_link_templates(template, words):
    problems = url_template_problems(template)
    assert (problems == []) if words is None else any(words in p for p in problems), problems


@pytest.mark.parametrize("template, ticket, url", [
    ("https://jira.example.com/browse/{ticket}", "OPS-1", "https://jira.example.com/browse/OPS-1"),
    ("https://t.example.com/?id={ticket}", "#4/7?x&y", "https://t.example.com/?id=%234%2F7%3Fx%26y"),
    ("https://jira.example.com/browse/{ticket}", "", ""),
    ("", "OPS-1", ""),
    ("http://jira.example.com/browse/{ticket}", "OPS-1", ""),  # a refused template links nowhere
])
def test_links_are_built_with_the_ticket_quoted(template, ticket, url):
    assert ticket_url(template, ticket) == url

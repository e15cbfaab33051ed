"""Ticket references a request policy may require: the pattern a ticket must match and the URL template
its link is built from, each checked once here (the policy's ``clean()`` and the request service both
use it). Standard library only.

A pattern is an operator's regular expression, but Python's engine backtracks and has no time limit, so
a pattern is kept short, refused when it has the shapes that backtrack catastrophically (a repeat inside
a repeat, alternatives inside a repeat, a back-reference), and only ever matched against a ticket of at
most ``TICKET_INPUT_MAX`` characters.
"""

import re
from urllib.parse import quote, urlsplit

try:  # the parser behind ``re``: Python 3.11 moved it; the parse is only used to look for risky shapes
    import re._constants as _sre
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _sre
    import sre_parse as _sre_parse

PATTERN_MAX = 200
TEMPLATE_MAX = 500
TICKET_INPUT_MAX = 100
PLACEHOLDER = "{ticket}"

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT} | ({_sre.POSSESSIVE_REPEAT} if hasattr(_sre, "POSSESSIVE_REPEAT") else set())
_GROUPREFS = {_sre.GROUPREF, _sre.GROUPREF_EXISTS} | ({_sre.GROUPREF_IGNORE} if hasattr(_sre, "GROUPREF_IGNORE") else set())
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _children(op, av):
    """The sub-patterns an item of a parsed pattern holds."""
    if op == _sre.SUBPATTERN:
        return [av[-1]]
    if op == _sre.BRANCH:
        return list(av[1])
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1]]
    if getattr(_sre, "ATOMIC_GROUP", None) == op:
        return [av]
    return []


def _risky_shape(items, repeated=False):
    """Why the parsed pattern ``items`` may backtrack catastrophically, or ``""``."""
    for op, av in items:
        if op in _GROUPREFS:
            return "it uses a back-reference"
        if op in _REPEATS:
            _low, high, body = av
            if high > 1:
                if repeated:
                    return "it repeats something that is itself repeated (e.g. (a+)+)"
                why = _risky_shape(body, repeated=True)
            else:
                why = _risky_shape(body, repeated)
            if why:
                return why
            continue
        if op == _sre.BRANCH and repeated:
            return "it repeats a group of alternatives (e.g. (a|ab)+); use a character class such as [A-Z0-9]+"
        for child in _children(op, av):
            why = _risky_shape(child, repeated)
            if why:
                return why
    return ""


def pattern_problems(pattern):
    """What is wrong with a ticket ``pattern`` (empty: it may be used)."""
    if not pattern:
        return []
    if len(pattern) > PATTERN_MAX:
        return [f"The ticket pattern is {len(pattern)} characters long; at most {PATTERN_MAX}."]
    try:
        re.compile(pattern)
        parsed = _sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        return [f"The ticket pattern is not a regular expression: {exc}."]
    why = _risky_shape(parsed)
    if why:
        return [f"The ticket pattern could take very long to match: {why}. Write a simpler one, "
                r"e.g. ^[A-Z]+-\d+$."]
    return []


def ticket_matches(pattern, ticket):
    """Whether the whole of ``ticket`` matches ``pattern`` (never true for a pattern ``pattern_problems``
    refuses, nor for a ticket longer than ``TICKET_INPUT_MAX``)."""
    if len(ticket) > TICKET_INPUT_MAX or pattern_problems(pattern):
        return False
    return re.fullmatch(pattern, ticket) is not None


def url_template_problems(template):
    """What is wrong with a ticket link ``template`` such as ``https://jira.example.com/browse/{ticket}``."""
    if not template:
        return []
    if len(template) > TEMPLATE_MAX:
        return [f"The ticket link is {len(template)} characters long; at most {TEMPLATE_MAX}."]
    problems = []
    if template.count(PLACEHOLDER) != 1:
        problems.append(f"The ticket link needs exactly one {PLACEHOLDER}, where the ticket goes "
                        f"(e.g. https://jira.example.com/browse/{PLACEHOLDER}).")
    if _CONTROL.search(template):
        problems.append("The ticket link may not contain spaces or control characters.")
    try:
        parts = urlsplit(template)
    except ValueError as exc:
        return [*problems, f"The ticket link is not a URL: {exc}."]
    if parts.scheme.lower() != "https" or not parts.hostname:
        problems.append("The ticket link must be an https:// address with a host name.")
    elif PLACEHOLDER in parts.netloc:
        problems.append(f"The ticket goes in the path or query of the link, not in its host: put {PLACEHOLDER} "
                        "after the first /.")
    return problems


def ticket_url(template, ticket):
    """The link to ``ticket`` built from ``template`` (the ticket URL-quoted), or ``""`` when there is no
    ticket, no template, or a template ``url_template_problems`` refuses."""
    if not (template and ticket) or url_template_problems(template):
        return ""
    return template.replace(PLACEHOLDER, quote(ticket, safe=""))

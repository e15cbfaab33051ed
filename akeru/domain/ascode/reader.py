"""Reading ``akeru/v1`` files: YAML 1.2 (ruamel.yaml's round-trip loader, which keeps every line and
refuses duplicate keys), then every value checked against the declarations in ``schema``.

PyYAML's ``safe_load`` would read the account id ``012345670123`` as a number, ``no`` as false, keep the
last of two duplicate keys and forget lines; here an account id must be a quoted string, a boolean is
``true`` or ``false``, a duplicate key is an error, an unknown field is refused, and every problem says
its file and line. ``read(name, data)`` takes the file's bytes, so it does no I/O of its own.
"""

import re
from datetime import datetime

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .documents import Document, Problem, parse_duration
from .schema import (
    ACCOUNT_ID, API_VERSION, BOOLEAN, BY_NAME, DATETIME, DURATION, ENVELOPE, INTEGER, STRING, STRINGS,
)

ACCOUNT_ID_RE = re.compile(r"\d{12}")
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}
WORD_RE = re.compile(r"[A-Za-z]+")


def read(name, data):
    """``(documents, problems)`` of the file ``name`` whose bytes are ``data``."""
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark must not hide a %YAML directive
    except UnicodeDecodeError as exc:
        return [], [Problem(name, line_at(data, exc.start), f"not UTF-8 (byte {data[exc.start]:#04x} at offset "
                                                             f"{exc.start}); save the file as UTF-8")]
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("%YAML") and line.split()[1:2] != ["1.2"]:
            return [], [Problem(name, number, f"{line.strip()!r}: these files are YAML 1.2 (remove the directive)")]
    try:
        loaded = list(YAML(typ="rt", pure=True).load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        if "duplicate key" in (exc.problem or ""):
            what = exc.problem.split(" with value")[0]
        return [], [Problem(name, mark.line + 1 if mark else 0, f"not valid YAML: {what}")]
    except YAMLError as exc:
        return [], [Problem(name, 0, f"not valid YAML: {exc}")]
    documents, problems = [], []
    text_lines = text.splitlines()  # once per file: a value is quoted back from its line
    for raw in loaded:
        if raw is None:
            continue
        document = read_document(name, raw, text_lines, problems)
        if document is not None:
            documents.append(document)
    return documents, problems


def line_at(data, offset):
    return data[:offset].count(b"\n") + 1


def read_document(name, raw, text_lines, problems):
    line = raw.lc.line + 1 if hasattr(raw, "lc") else 1
    if not isinstance(raw, dict):
        problems.append(Problem(name, line, "a document must be a mapping (apiVersion, kind and the object's "
                                            "fields)"))
        return None
    version = raw.get("apiVersion")
    if version != API_VERSION:
        problems.append(Problem(name, line, f"apiVersion must be {API_VERSION!r}, not {version!r}"
                                if version is not None else f"apiVersion is missing (give apiVersion: {API_VERSION})"))
        return None
    kind_name = raw.get("kind")
    kind = BY_NAME.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        problems.append(Problem(name, key_line(raw, "kind", line),
                                f"unknown kind {kind_name!r}; the kinds are {', '.join(sorted(BY_NAME))}"))
        return None
    lines = {key: key_line(raw, key, line) for key in raw}
    document = Document(kind=kind.name, values={}, file=name, line=line, lines=lines)
    for key, value in raw.items():
        if key in ENVELOPE:
            continue
        declared = kind.field(key) if isinstance(key, str) else None
        if declared is None:
            problems.append(document.problem(f"{kind.name} has no field {key!r} (its fields: "
                                              f"{', '.join(kind.names)})", key))
            continue
        converted, problem = convert(declared, value, source_text(text_lines, raw, key))
        if problem:
            problems.append(document.problem(f"{key}: {problem}", key))
        elif converted is not None:
            document.values[key] = converted
    for declared in kind.fields:
        if declared.required and declared.name not in raw:
            problems.append(document.problem(f"{kind.name} needs {declared.name!r}"))
    return document


def key_line(raw, key, default):
    try:
        return raw.lc.key(key)[0] + 1
    except (AttributeError, KeyError, TypeError):
        return default


def source_text(text_lines, raw, key):
    """The value of ``key`` as it is written in the file (``text_lines``: its lines), to quote it back in a
    message."""
    try:
        line, column = raw.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        return ""
    return text_lines[line][column:].split("#")[0].strip() if line < len(text_lines) else ""


def convert(declared, value, written):
    """``(value, None)`` or ``(None, why)``: one value checked against its declared type."""
    if value is None:
        return (None, None) if not declared.required else (None, "is empty")
    kind = declared.type
    if kind == ACCOUNT_ID:
        if isinstance(value, bool) or not isinstance(value, str):
            what = "the number" if isinstance(value, (int, float)) else type(value).__name__
            return None, (f"account ids must be quoted strings: {written or value} unquoted is read as {what} "
                          f"{value!r}, not the id; write \"{written or value}\"")
        if not ACCOUNT_ID_RE.fullmatch(value):
            return None, f"{value!r} is not an AWS account id: exactly 12 digits"
        return value, None
    if kind == BOOLEAN:
        if isinstance(value, bool):
            spelled = WORD_RE.match(written or "")
            if spelled and spelled.group(0) not in ("true", "false"):
                return None, f"booleans are true or false only (lower case): write {str(value).lower()}, not " \
                             f"{spelled.group(0)}"
            return value, None
        if isinstance(value, str) and value.lower() in YAML11_BOOLEANS:
            return None, f"booleans are true or false only: {value!r} is text in YAML 1.2"
        return None, f"expected true or false, got {value!r}"
    if kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected a whole number, got {value!r}"
        return int(value), None
    if kind == STRING:
        if not isinstance(value, str):
            return None, f"expected text, got {type(value).__name__} {value!r} (quote it)"
        return str(value), None
    if kind == STRINGS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return None, "expected a list of names"
        return tuple(sorted(str(item) for item in value)), None
    if kind == DURATION:
        seconds = parse_duration(value) if isinstance(value, str) else None
        if seconds is None:
            return None, f"expected a duration such as 4h, 90m or 1d12h, got {value!r}"
        return seconds, None
    if kind == DATETIME:
        if isinstance(value, datetime):
            moment = value
        else:
            try:
                moment = datetime.fromisoformat(str(value))
            except ValueError:
                return None, f"expected a time such as 2027-01-31T18:00:00Z, got {value!r}"
        if moment.tzinfo is None:
            return None, f"{written or str(value)!r} has no time zone: end it with Z (UTC) or an offset such as +02:00"
        return datetime.fromisoformat(moment.isoformat()), None  # a plain datetime, not ruamel's TimeStamp
    raise ValueError(kind)

"""Writing ``akeru/v1`` files: one YAML document per object, fields in their declared order, a field at its
default left out, account ids quoted, durations as ``4h``, times in UTC. The same objects in the same order
give the same bytes."""

import io

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from .documents import format_datetime, format_duration
from .schema import API_VERSION, BY_NAME, DATETIME, DURATION, STRINGS

HEADER = "# Akeru access as code ({kind}); see docs/access-as-code.md\n"


def yaml():
    out = YAML(typ="rt", pure=True)
    out.width = 4096  # never fold a long line (a folded string would read back the same, but less readably)
    out.indent(mapping=2, sequence=4, offset=2)
    out.explicit_start = True
    return out


def fields_of(kind, values):
    """The fields ``values`` writes, in their declared order (a field at its default is left out)."""
    out = {"apiVersion": API_VERSION, "kind": kind}
    for declared in BY_NAME[kind].fields:
        value = values.get(declared.name)
        if declared.type == STRINGS and value is not None:
            value = tuple(sorted(value))
        if value is None or value == declared.default or (declared.type == STRINGS and not value
                                                          and not declared.default):
            continue
        if declared.type == DURATION:
            value = format_duration(value)
        elif declared.type == DATETIME:
            value = format_datetime(value)
        elif declared.type == STRINGS:
            value = sorted(value)
        elif isinstance(value, str) and "\n" in value:
            value = LiteralScalarString(value)
        out[declared.name] = value
    return out


def render(kind, objects):
    """The text of a file holding ``objects`` (value dicts) of ``kind``, in the order given."""
    stream = io.StringIO()
    stream.write(HEADER.format(kind=kind))
    writer = yaml()
    for values in objects:
        writer.dump(fields_of(kind, values), stream)
    return stream.getvalue()

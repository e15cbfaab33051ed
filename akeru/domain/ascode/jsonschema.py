"""The JSON Schema of one ``akeru/v1`` document (for editors: point the YAML language server at it),
generated from the declarations in ``schema``: ``python -m akeru.domain.ascode.jsonschema >
docs/schema/akeru-v1.json``. Pure."""

import json

from .schema import (
    ACCOUNT_ID, API_VERSION, BOOLEAN, DATETIME, DURATION, DURATION_PATTERN, INTEGER, KINDS, STRING, STRINGS,
)

TYPES = {
    STRING: {"type": "string"},
    ACCOUNT_ID: {"type": "string", "pattern": r"^[0-9]{12}$"},
    BOOLEAN: {"type": "boolean"},
    INTEGER: {"type": "integer"},
    DURATION: {"type": "string", "pattern": DURATION_PATTERN},
    DATETIME: {"type": "string", "format": "date-time"},
    STRINGS: {"type": "array", "items": {"type": "string"}},
}


def kind_schema(kind):
    properties = {"apiVersion": {"const": API_VERSION}, "kind": {"const": kind.name}}
    for f in kind.fields:
        properties[f.name] = {**TYPES[f.type], "description": f.doc}
    return {"title": kind.name, "description": kind.doc, "type": "object", "properties": properties,
            "required": ["apiVersion", "kind", *(f.name for f in kind.fields if f.required)],
            "additionalProperties": False}


def schema():
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "akeru-v1.json",
        "title": "Akeru access as code, apiVersion akeru/v1 (one document)",
        "oneOf": [{"$ref": f"#/$defs/{kind.name}"} for kind in sorted(KINDS, key=lambda k: k.name)],
        "$defs": {kind.name: kind_schema(kind) for kind in sorted(KINDS, key=lambda k: k.name)},
    }


def text():
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")

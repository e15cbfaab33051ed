"""What Okta and Entra really send to ``/scim/v2/``, made into one plain form before Akeru's SCIM adapters
(``akeru.web.scim``) read it. Pure: no database.

The quirks accepted (docs/scim.md):

- ``op`` in any case: ``"Replace"``, ``"Add"``, ``"remove"``;
- booleans as strings: ``"active": "False"`` (Entra), anywhere a boolean is read;
- a PATCH with a path (``"path": "active"``, ``"name.givenName"``, ``"emails[type eq \\"work\\"].value"``)
  or without one (``"value": {"active": false}``, Okta; ``"value": {"name.givenName": "Alice"}``);
- group members added or removed as a list (``"value": [{"value": "<id>"}]``), removed by a filter path
  (``"path": "members[value eq \\"<id>\\"]"``, Okta), all removed (``"remove"`` of ``members`` without a
  value), or replaced whole (``"replace"`` of ``members``);
- an enterprise or custom extension's attributes (``urn:…:User:department``): accepted and ignored.
"""

import re

from django_scim import exceptions

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"  # Entra's, beside GROUP
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
KNOWN = {"User": {USER, ENTERPRISE_USER}, "Group": {GROUP, ENTRA_GROUP}}
CORE = {"User": USER, "Group": GROUP}
OPS = ("add", "replace", "remove")

_MEMBER_FILTER = re.compile(r'^members\[\s*value\s+eq\s+"(?P<value>[^"]*)"\s*\]$', re.IGNORECASE)
_EMAIL_FILTER = re.compile(r'^emails\[\s*type\s+eq\s+"(?P<type>[^"]*)"\s*\](?:\.value)?$', re.IGNORECASE)
_URN = re.compile(r"^urn:[^ ]+:(?P<attr>[A-Za-z0-9_.$-]+)$")


def bad(detail, scim_type="invalidValue"):
    return exceptions.BadRequestError(detail, scim_type=scim_type)


def boolean(value, name="active"):
    """``True``/``False`` from a JSON boolean or Entra's ``"True"``/``"False"`` strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise bad(f'"{name}" must be true or false, not {value!r}.')


def check_schemas(body, resource):
    """A POST or PUT body of ``resource`` ("User" or "Group"): an object naming its core schema and no
    schema Akeru does not know."""
    if not isinstance(body, dict):
        raise bad(f"The body must be a JSON object (a SCIM {resource}).", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise bad(f'"schemas" must be a list naming {CORE[resource]}.', "invalidSyntax")
    unknown = sorted(set(schemas) - KNOWN[resource])
    if unknown:
        raise bad(f"Unknown schema {', '.join(unknown)} for a {resource}; Akeru knows "
                  f"{', '.join(sorted(KNOWN[resource]))}.", "invalidSyntax")
    if CORE[resource] not in schemas:
        raise bad(f'"schemas" must include {CORE[resource]}.', "invalidSyntax")


def attribute(path):
    """The plain name of a SCIM attribute path: ``name.givenName``, ``emails`` (for the work or primary
    email's value), ``members`` or ``members:<id>`` (one member, by filter), or ``ext:<name>`` for an
    extension's attribute."""
    path = path.strip()
    member = _MEMBER_FILTER.match(path)
    if member:
        return f"members:{member['value']}"
    if _EMAIL_FILTER.match(path):
        return "emails"
    if path.startswith("urn:"):
        for core in CORE.values():
            if path.startswith(core + ":"):
                return attribute(path[len(core) + 1:])
        found = _URN.match(path)
        return f"ext:{found['attr'] if found else path}"
    if "[" in path:
        return f"ignored:{path}"  # addresses[type eq "work"].formatted and the like: not kept by Akeru
    return path


def patch_operations(body):
    """The operations of a PATCH body as ``[(op, attribute, value), …]``, ``op`` lower case and each
    value-only operation split into one per attribute. A malformed body raises a SCIM 400."""
    if not isinstance(body, dict):
        raise bad("The body must be a JSON object (a SCIM PatchOp).", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and schemas != [PATCH_OP]:
        raise bad(f'A PATCH names the schema {PATCH_OP}, not {schemas!r}.', "invalidSyntax")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise bad('A PATCH needs a non-empty "Operations" list.', "invalidSyntax")
    plain = []
    for number, operation in enumerate(operations, 1):
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str):
            raise bad(f'Operation {number} must be an object with an "op".', "invalidSyntax")
        op = operation["op"].strip().lower()
        if op not in OPS:
            raise bad(f'Operation {number}: unknown op {operation["op"]!r} (add, replace or remove).', "invalidSyntax")
        path, value = operation.get("path"), operation.get("value")
        if path is not None and not isinstance(path, str):
            raise bad(f'Operation {number}: "path" must be a string.', "invalidPath")
        if path:
            plain.append((op, attribute(path), value))
        elif op == "remove":
            raise bad(f'Operation {number}: a "remove" needs a "path".', "noTarget")
        elif isinstance(value, dict):
            plain.extend((op, attribute(key), item) for key, item in value.items())
        else:
            raise bad(f'Operation {number}: without a "path" the value must be an object of attributes.',
                      "invalidValue")
    return plain


def member_ids(value, number_hint="members"):
    """The ids in a members value: ``[{"value": id}, …]`` (or one such object)."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("value"), str)
                                              for m in value):
        raise bad(f'"{number_hint}" must be a list of {{"value": "<user id>"}}.')
    return [m["value"] for m in value]


def primary_email(value):
    """The email to keep from a SCIM ``emails`` value: the primary one, else the work one, else the first
    (a list of objects, one object, or a bare string from a filter path)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise bad('"emails" must be a list of {"value": "…"}.')
    def rank(email):
        primary = email.get("primary")
        is_primary = primary is not None and boolean(primary, "emails.primary")
        return (not is_primary, email.get("type") != "work")
    chosen = sorted(value, key=rank)
    return str(chosen[0].get("value") or "").strip() if chosen else ""

"""What applying the files would change: a plan of creations, changes (each field before → after) and
deletions, computed from the files' documents and the database's objects in the same form. Pure."""

import json
from dataclasses import dataclass, field

from .documents import complete, digest, format_datetime, format_duration, key_of, label_of
from .schema import BY_NAME, DATETIME, DURATION, KINDS

CREATE, CHANGE, DELETE = "create", "change", "delete"
SIGNS = {CREATE: "+", CHANGE: "~", DELETE: "-"}


@dataclass(frozen=True)
class Current:
    """One object of the database, in the files' form, with what its last apply recorded."""

    kind: str
    values: dict
    pk: int
    source_file: str = ""
    source_digest: str = ""
    source_line: int | None = None
    source_commit: str = ""

    @property
    def drifted(self):
        """Managed by code, and edited since it was applied (an emergency edit in the admin)."""
        return bool(self.source_file) and self.source_digest != digest(self.kind, self.values)


@dataclass(frozen=True)
class Change:
    op: str
    kind: str
    label: str
    where: str = ""  # file:line of the document (create, change)
    fields: tuple = ()  # (name, before, after) as the files write them
    document: object = None
    current: Current | None = None

    @property
    def drift(self):
        return self.current is not None and self.current.drifted


@dataclass
class Plan:
    changes: list = field(default_factory=list)
    kept: list = field(default_factory=list)  # objects absent from the files, kept (no prune), as Current
    unchanged: list = field(default_factory=list)  # (document, current): to mark as managed when not yet
    warnings: list = field(default_factory=list)  # Problems that do not stop an apply (a group not pushed yet)
    applied: bool = False  # set by an apply that changed something
    commit: str = ""  # the revision an apply recorded
    prune: bool = False

    def __bool__(self):
        return bool(self.changes)

    def count(self, op):
        return sum(1 for c in self.changes if c.op == op)

    @property
    def deletions(self):
        return self.count(DELETE)

    @property
    def drifted(self):
        return [c for c in self.changes if c.drift]

    def summary(self):
        if not self.changes:
            return "No changes: the database matches the files."
        return (f"Plan: {self.count(CREATE)} to create, {self.count(CHANGE)} to change, "
                f"{self.count(DELETE)} to delete.")

    def render(self):
        lines = []
        for change in self.changes:
            where = f"  ({change.where})" if change.where else ""
            drift = "  [drift: edited in the admin since it was applied]" if change.drift else ""
            lines.append(f"{SIGNS[change.op]} {change.op} {change.label}{where}{drift}")
            for name, before, after in change.fields:
                lines.append(f"    {name}: {shown(after)}" if change.op == CREATE
                             else f"    {name}: {shown(before)} → {shown(after)}")
        if self.kept:
            why = "accounts are never pruned" if self.prune else "--prune deletes them"
            lines.append(f"{len(self.kept)} object(s) of the database are not in the files and are kept ({why}).")
        lines.append(self.summary())
        return "\n".join(lines) + "\n"


def shown(value):
    if value is None or value == "" or value == ():
        return "(none)"
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (str, list)) else str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def written(kind, name, value):
    """A field's value as the files write it (for a plan's before → after)."""
    declared = BY_NAME[kind].field(name)
    if value is None:
        return None
    if declared.type == DURATION:
        return format_duration(value)
    if declared.type == DATETIME:
        return format_datetime(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def differences(kind, before, after):
    before, after = complete(kind, before), complete(kind, after)
    return tuple((name, written(kind, name, before[name]), written(kind, name, after[name]))
                 for name in BY_NAME[kind].names if before[name] != after[name])


def plan(documents, current, prune=False, waiting=()):
    """The ``Plan`` from the files' ``documents`` (checked, accounts resolved) to them from ``current`` (the
    database's objects, ``Current``), in the order objects are applied (deletions last, in reverse).
    ``waiting``: documents left out of this apply (a group not pushed yet), whose objects are not pruned."""
    by_key = {key_of(c.kind, c.values): c for c in current}
    out = Plan(prune=prune)
    wanted = {document.key() for document in waiting}
    order = {k.name: i for i, k in enumerate(KINDS)}
    for document in sorted(documents, key=lambda d: (order[d.kind], d.file, d.line)):
        key = document.key()
        wanted.add(key)
        existing = by_key.get(key)
        if existing is None:
            out.changes.append(Change(CREATE, document.kind, document.label(), document.where,
                                      differences(document.kind, {}, document.values), document))
            continue
        fields = differences(document.kind, existing.values, document.values)
        if fields:
            out.changes.append(Change(CHANGE, document.kind, document.label(), document.where, fields, document,
                                      existing))
        else:
            out.unchanged.append((document, existing))
    absent = sorted((c for c in current if key_of(c.kind, c.values) not in wanted),
                    key=lambda c: (-order[c.kind], label_of(c.kind, c.values)))
    for existing in absent:
        if prune and existing.kind != "Account":  # an account is never pruned (its principals may remain)
            out.changes.append(Change(DELETE, existing.kind, label_of(existing.kind, existing.values),
                                      current=existing))
        else:
            out.kept.append(existing)
    return out

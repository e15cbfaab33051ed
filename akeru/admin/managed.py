"""Objects managed by code (access as code): read-only in the admin, with the file they came from.

An object an apply wrote from files (``source_file`` set: accounts, principals, grants, request policies,
approval rules, Slack routes) is changed in Git, not here: its change page shows it read-only with its file,
line and commit and the note "managed by code: change it in Git"; saving, deleting, and every bulk action that
would change it are refused (403 for a page, an error message for an action, whatever else is selected). With
``AKERU_APPLY_ALLOW_ADMIN_EDITS`` on an operator may make an emergency edit: each one is audited saying so, and
the next ``akeru_plan`` reports the difference between the files and the database as drift.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html

from ..settings.accessor import akeru_settings

SOURCE_FIELD = "code_source"  # the read-only field that names the object's file
NOTE = "managed by code: change it in Git"
SHOWN_REFUSED = 5  # objects an action's refusal names


def managed(obj):
    return bool(obj is not None and getattr(obj, "source_file", ""))


def edits_allowed():
    return bool(akeru_settings.AKERU_APPLY_ALLOW_ADMIN_EDITS)


def where(obj):
    """``roles/dev.yaml:12 at 3f2c1ab`` — the file, line and commit ``obj`` was applied from."""
    text = obj.source_file + (f":{obj.source_line}" if obj.source_line else "")
    return text + (f" at {obj.source_commit[:12]}" if obj.source_commit else "")


def source_panel(obj):
    """What the change page says of an object managed by code."""
    commit = format_html(", commit <code>{}</code>", obj.source_commit) if obj.source_commit else ""
    line = format_html(" line {}", obj.source_line) if obj.source_line else ""
    allowed = (" Emergency edits are allowed (AKERU_APPLY_ALLOW_ADMIN_EDITS): each is audited, and the next plan "
               "reports it as drift." if edits_allowed() else "")
    return format_html('<b style="color:#8a6d00">{}</b> — from <code>{}</code>{}{}.{}', NOTE, obj.source_file,
                       line, commit, allowed)


class ManagedByCodeFilter(admin.SimpleListFilter):
    title = "managed by code"
    parameter_name = "code"

    def lookups(self, request, model_admin):
        return [("yes", "yes (change it in Git)"), ("no", "no")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(source_file="")
        if self.value() == "no":
            return queryset.filter(source_file="")
        return queryset


class CodeManagedAdmin:
    """Mixin for the admins (before ``AuditedAdmin``) of models with the ``CodeManaged`` fields.

    Lists filter on it (``ManagedByCodeFilter``) and mark such rows in a "code" column. ``code_changing_actions`` are
    the bulk actions that change or delete the selected objects (Django's
    ``delete_selected`` always); ``code_touched(request, name, queryset)`` may widen what such an action changes
    (making a rule the default also changes the old default)."""

    code_changing_actions = ("delete_selected",)
    code_list_column = True  # a "code" column in the list (the principals' list has no room: the filter says it)

    def code_touched(self, request, name, queryset):
        return queryset

    def _code_locked(self, obj):
        return managed(obj) and not edits_allowed()

    def has_change_permission(self, request, obj=None):
        return not self._code_locked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._code_locked(obj) and super().has_delete_permission(request, obj)

    @admin.display(description="source")
    def code_source(self, obj):
        return source_panel(obj) if managed(obj) else "—"

    @admin.display(description="code")
    def code_column(self, obj):
        return format_html('<span title="{}">{}</span>', where(obj), "managed by code") if managed(obj) else ""

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return [*shown, "code_column"] if self.code_list_column else shown

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), ManagedByCodeFilter]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), SOURCE_FIELD]

    def get_fieldsets(self, request, obj=None):
        return self.code_fieldsets(obj, super().get_fieldsets(request, obj))

    @staticmethod
    def code_fieldsets(obj, fieldsets):
        """``fieldsets`` with the source first when ``obj`` is managed by code (an admin that builds its own
        fieldsets passes them through this)."""
        fieldsets = [(name, {**options, "fields": [f for f in options["fields"] if f != SOURCE_FIELD]})
                     for name, options in fieldsets]
        if not managed(obj):
            return fieldsets
        return [("Managed by code", {"fields": [SOURCE_FIELD]}), *fieldsets]

    def get_actions(self, request):
        actions = super().get_actions(request)
        for name in self.code_changing_actions:
            if name in actions:
                func, action_name, description = actions[name]
                actions[name] = (self._guarded(name, func), action_name, description)
        return actions

    def _guarded(self, name, func):
        def action(modeladmin, request, queryset):
            if not edits_allowed():
                locked = [o for o in self.code_touched(request, name, queryset).exclude(source_file="")]
                if locked:
                    shown = ", ".join(f"{o} ({where(o)})" for o in locked[:SHOWN_REFUSED])
                    more = f" and {len(locked) - SHOWN_REFUSED} more" if len(locked) > SHOWN_REFUSED else ""
                    self.message_user(request, f"Nothing done: {len(locked)} of the objects this would change "
                                               f"are {NOTE}: {shown}{more}.", messages.ERROR)
                    return None
            return func(modeladmin, request, queryset)

        return action

    def check_deletable(self, queryset):
        """Refuse (403) to delete objects managed by code: a last guard behind the permissions and actions."""
        if not edits_allowed() and queryset.exclude(source_file="").exists():
            raise PermissionDenied(f"objects {NOTE} cannot be deleted here")

    def delete_queryset(self, request, queryset):
        self.check_deletable(queryset)
        super().delete_queryset(request, queryset)

    def audit_note(self, obj):
        if not managed(obj):
            return super().audit_note(obj)
        return (f"emergency edit of an object managed by code, from {where(obj)}: the next plan reports the "
                "difference from the files as drift")


class CodeManagedInline:
    """Mixin for an inline whose rows are managed by code, or whose parent is: read-only, nothing added or
    deleted, unless ``AKERU_APPLY_ALLOW_ADMIN_EDITS``."""

    def _code_locked(self, parent):
        if edits_allowed() or parent is None:
            return False
        return managed(parent) or self.model.objects.filter(**{self.fk_name_for(parent): parent}).exclude(
            source_file="").exists()

    def fk_name_for(self, parent):
        return self.fk_name or next(f.name for f in self.model._meta.fields
                                    if f.is_relation and f.related_model is type(parent))

    def has_add_permission(self, request, obj=None):
        return not self._code_locked(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._code_locked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._code_locked(obj) and super().has_delete_permission(request, obj)

"""Moved to akeru.admin.forms; re-exported here for one release (removed in 0.3)."""

from .admin.forms import AWSRoleForm, TemplateSelect, template_choices

__all__ = ["AWSRoleForm", "TemplateSelect", "template_choices"]

"""``{% approvals_link as approvals %}``: whether the signed-in person approves anything, and how
many requests wait for them (for the "Approvals" link in the top bar)."""

from django import template

from ..services.requests import pending_count_for_approver

register = template.Library()


@register.simple_tag(takes_context=True)
def approvals_link(context):

    user = getattr(context.get("request"), "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return {"show": False, "pending": 0}
    if not user.groups.filter(akeru_approves__isnull=False).exists():
        return {"show": False, "pending": 0}
    return {"show": True, "pending": pending_count_for_approver(user)}

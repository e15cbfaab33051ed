from django import template

register = template.Library()


@register.filter
def duration(seconds):
    """3600 -> '1 h', 5400 -> '1 h 30 min', 900 -> '15 min'."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return ""
    hours, minutes = divmod(seconds // 60, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"

"""django-celery-beat's periodic tasks, with their actions behind the change permission."""

from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask


class GatedPeriodicTaskAdmin(PeriodicTaskAdmin):
    """django-celery-beat's admin, whose actions (enable, disable, toggle, run now) ask for no permission:
    here they need the change permission on periodic tasks (disabling Akeru's sweeps stops expiries,
    rotations and repairs; "run now" starts any task)."""

    GATED_ACTIONS = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_change_permission(request):
            for name in self.GATED_ACTIONS:
                actions.pop(name, None)
        return actions


if admin.site.is_registered(PeriodicTask):
    admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, GatedPeriodicTaskAdmin)

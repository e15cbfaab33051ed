"""Signed webhooks: the webhooks (which audit actions each hears of; send a test event; enable, disable;
reveal or rotate the signing secret, behind its own permission) and their delivery log, read-only.

The secret is shown once, on the page that follows adding a webhook, and afterwards only to someone with
``akeru.reveal_webhook_secret`` — never on a list or a change page. Each reveal and each rotation is an audit
event (``webhook secret shown``) naming who saw it; the secret itself is in none.
"""

from django import forms
from django.contrib import admin
from django.db import transaction
from django.template.response import TemplateResponse

from .. import audit
from ..models import AuditEvent, Webhook, WebhookDelivery
from ..services import webhooks
from ..web.http import requester
from .audit import AuditedAdmin
from .records import ReadOnlyAdmin

SECRET_TEMPLATE = "admin/akeru/webhook/secret.html"


def _https_first(db_field, **kwargs):
    """A URL typed without a scheme is read as https:// (what a webhook's URL must be)."""
    if db_field.name == "url":
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


class WebhookForm(forms.ModelForm):
    actions = forms.MultipleChoiceField(choices=AuditEvent.Action.choices, required=False,
                                        widget=forms.CheckboxSelectMultiple,
                                        help_text="The audit events sent to this webhook.")

    class Meta:
        model = Webhook
        fields = ["name", "url", "actions", "enabled"]
        formfield_callback = _https_first

    def clean_url(self):
        url = self.cleaned_data["url"]
        problem = webhooks.url_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin):
    form = WebhookForm
    list_display = ["name", "url", "enabled", "selected", "last_success_at", "failing_since", "disabled_at",
                    "disabled_reason"]
    list_filter = ["enabled"]
    search_fields = ["name", "url"]
    readonly_fields = ["created_at", "last_success_at", "failing_since", "disabled_at", "disabled_reason"]
    actions = ["send_test_event", "enable", "disable", "reveal_secret", "rotate_secret"]

    @admin.display(description="audit actions")
    def selected(self, obj):
        return ", ".join(obj.actions or []) or "none"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "url":
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def has_reveal_secret_permission(self, request):
        return request.user.has_perm("akeru.reveal_webhook_secret")

    def response_add(self, request, obj, post_url_continue=None):
        """The one time the secret is shown without the reveal permission: to whoever just made it."""
        return self._secret_page(request, obj, "The webhook was added. Copy its signing secret now: it is not "
                                                "shown again (someone with the reveal permission can show it).")

    def _secret_page(self, request, webhook, why):
        response = TemplateResponse(request, SECRET_TEMPLATE, {
            **self.admin_site.each_context(request), "webhook": webhook, "secret": webhook.secret, "why": why,
            "title": f"Signing secret of {webhook.name}"})
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request, queryset):
        with transaction.atomic():
            sent = [webhooks.send_test_event(w) for w in queryset.filter(enabled=True)]
        self.message_user(request, f"Queued a test event to {len(sent)} enabled webhook(s); its outcome shows in "
                                   "the delivery log.")

    @admin.action(description="Enable (start afresh)", permissions=["change"])
    def enable(self, request, queryset):
        n = sum(webhooks.enable(w) for w in queryset.filter(enabled=False))
        self.message_user(request, f"Enabled {n} webhook(s).")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        n = queryset.filter(enabled=True).update(enabled=False, disabled_reason="disabled by an operator")
        self.message_user(request, f"Disabled {n} webhook(s).")

    @admin.action(description="Reveal the signing secret (one webhook)", permissions=["reveal_secret"])
    def reveal_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one webhook to reveal its secret.", level="warning")
            return None
        webhook = queryset.get()
        _audit_secret_shown(request, webhook, f"signing secret of webhook {webhook.name} revealed in the admin")
        return self._secret_page(request, webhook, "Revealed at your request.")

    @admin.action(description="Rotate the signing secret (one webhook)", permissions=["reveal_secret"])
    def rotate_secret(self, request, queryset):
        """A new secret, shown once; the old one stops signing at once (update the receiver first, or
        expect its checks to fail until it has the new one: failed deliveries are retried)."""
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one webhook to rotate its secret.", level="warning")
            return None
        with transaction.atomic():
            webhook = Webhook.objects.select_for_update().get(pk=queryset.get().pk)
            webhook.new_secret()
            webhook.save(update_fields=["encrypted_secret"])
            _audit_secret_shown(request, webhook, f"signing secret of webhook {webhook.name} rotated in the admin",
                                rotated=True)
        return self._secret_page(request, webhook, "A new signing secret: give it to the receiver now. The old "
                                                   "one no longer signs deliveries.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: what was sent where and how it went (status code, attempts, last error — never the
    answer's body)."""

    list_display = ["created_at", "webhook", "action", "status", "attempts", "last_status_code", "last_error",
                    "next_attempt_at", "last_attempt_at", "message_id"]
    list_filter = ["status", "webhook", "action"]
    search_fields = ["message_id", "last_error"]
    list_select_related = ["webhook"]
    exclude = ["claimed_until"]


def _audit_secret_shown(request, webhook, reason, rotated=False):
    audit.record(requester(request, AuditEvent.Channel.ADMIN), AuditEvent.Action.WEBHOOK_SECRET_SHOWN,
                 AuditEvent.Outcome.SUCCESS, reason, detail={"webhook": webhook.name, "webhook_pk": webhook.pk,
                                                             "rotated": rotated})

"""Admin forms. Template choices come from the catalog in the database: no request touches S3."""

from django import forms

from ..domain.lint import FINDING_CHOICES
from ..domain.scope import parameterised_note
from ..settings.accessor import akeru_settings
from ..models import Account, AWSRole, CatalogRefresh, PolicyTemplate, RequestPolicy


class TemplateSelect(forms.Select):
    """Shows every catalogued template; one that cannot be used is listed with its reason, disabled."""

    def __init__(self, *args, unusable=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unusable = unusable or {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value in self.unusable:
            option["attrs"]["disabled"] = True
        return option


def template_choices():
    """``(choices, unusable)``: unusable maps a template name to why it cannot be chosen."""
    choices, unusable = [("", "---------")], {}
    refuse_admin = akeru_settings.refuse_admin_templates
    for template in PolicyTemplate.objects.all():
        if template.usable and template.warning and refuse_admin:
            unusable[template.name] = f"it {template.warning}, which Akeru refuses unless AKERU_ALLOW_ADMIN_TEMPLATES is set"
            choices.append((template.name, f"{template.name} — unusable: {unusable[template.name]}"[:300]))
        elif template.usable and template.parameters:
            choices.append((template.name, f"{template.name} — {parameterised_note(template.parameters)}"[:300]))
        elif template.usable and template.warning:
            choices.append((template.name, f"{template.name} — warning: {template.warning}"[:300]))
        elif template.usable:
            choices.append((template.name, template.name))
        else:
            reason = template.error if template.present else "no longer in the bucket"
            unusable[template.name] = reason
            choices.append((template.name, f"{template.name} — unusable: {reason}"[:300]))
    return choices, unusable


class AWSRoleForm(forms.ModelForm):
    class Meta:
        model = AWSRole
        fields = ["account", "name", "policy", "user", "mfa", "require_passkey", "ec2", "aws_lambda", "trust", "description",
                  "keep_vending"]
        widgets = {"trust": forms.Textarea(attrs={"rows": 8, "cols": 80, "class": "vLargeTextField"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices, unusable = template_choices()
        current = self.instance.policy if self.instance.pk else None
        if current and current not in dict(choices):
            choices.append((current, f"{current} — not in the catalog"))
            unusable[current] = "not in the catalog"
        self.unusable = unusable
        if "account" in self.fields:
            self.fields["account"].required = False
            self.fields["account"].queryset = Account.objects.filter(enabled=True) | Account.objects.filter(
                pk=self.instance.account_id or 0)
            self.fields["account"].help_text = "The AWS account it lives in. Empty: the default account."
        help_text = "Templates found under POLICY_PREFIX by the last catalog refresh."
        latest = CatalogRefresh.objects.first()
        if latest and not latest.ok:
            help_text += f" The last refresh failed: {latest.error}"
        elif len(choices) == 1:
            help_text += " None yet: refresh the catalog from the Policy templates page."
        self.fields["policy"] = forms.ChoiceField(
            choices=choices, widget=TemplateSelect(unusable=unusable), help_text=help_text, label="Policy template"
        )

    def clean_account(self):
        """No account chosen: the settings' account (a single-account form posts none)."""
        account = self.cleaned_data.get("account") or Account.objects.default()
        if account is not None and not account.enabled and (not self.instance.pk or self.instance.account_id != account.pk):
            raise forms.ValidationError(f"{account} is disabled: enable it before adding principals to it.")
        return account

    def clean_policy(self):
        name = self.cleaned_data["policy"]
        if name in self.unusable:
            raise forms.ValidationError(f"Template {name!r} cannot be used: {self.unusable[name]}")
        return name

    def clean(self):
        """A template taking parameters is no standing role's: refused for a principal not marked requestable
        with parameters (its sync would send IAM ``${bucket}`` unfilled). One so marked is a pattern for
        purpose-built roles: its own sync makes nothing in IAM and says why. IAM's own variables
        (``${aws:username}``) are not parameters."""
        cleaned = super().clean()
        name = cleaned.get("policy")
        template = PolicyTemplate.objects.filter(name=name).first() if name else None
        pattern = cleaned.get("parameters_allowed", self.instance.parameters_allowed)
        if template is not None and template.parameters and not pattern:
            self.add_error("policy", f"Template {name!r} {parameterised_note(template.parameters)}. Mark the "
                                     "principal requestable with parameters (a pattern for purpose-built roles), or "
                                     "choose a template without placeholders.")
        return cleaned


class RequestPolicyForm(forms.ModelForm):
    """A request policy; its forbidden findings chosen from the policy check's codes."""

    forbidden_findings = forms.MultipleChoiceField(
        choices=FINDING_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, label="Forbidden findings",
        help_text=RequestPolicy._meta.get_field("forbidden_findings").help_text)

    class Meta:
        model = RequestPolicy
        fields = "__all__"

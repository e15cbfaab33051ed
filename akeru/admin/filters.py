"""List filters the admins share: a principal is named with its account ("developer (prod)",
"developer (dev)"), so principals of the same name in two accounts are two distinguishable choices."""

from django.contrib import admin

from ..models import AWSRole


def principal_label(principal):
    return f"{principal.name} ({principal.account.name})"


class PrincipalFilter(admin.RelatedFieldListFilter):
    """Every principal, by name and account."""

    def principals(self, request, model_admin):
        return AWSRole.objects.all()

    def field_choices(self, field, request, model_admin):
        principals = self.principals(request, model_admin).select_related("account").order_by("name", "account__name")
        return [(p.pk, principal_label(p)) for p in principals]


class UsedPrincipalFilter(PrincipalFilter):
    """The principals the list's rows name (``RelatedOnlyFieldListFilter``), by name and account."""

    def principals(self, request, model_admin):
        used = model_admin.get_queryset(request).values_list(f"{self.field_path}__pk", flat=True)
        return AWSRole.objects.filter(pk__in=used)

"""``/scim/v2/`` (docs/scim.md): mount with ``path("scim/v2/", include("akeru.scim_urls"))``. The names are
django-scim2's (namespace ``scim``), which its adapters reverse; the views are Akeru's (``akeru.web.scim``)."""

from django.urls import re_path

from .web import scim

app_name = "scim"

urlpatterns = [
    re_path(r"^$", scim.NotImplemented.as_view(), name="root"),
    re_path(r"^\.search$", scim.NotImplemented.as_view(), name="search"),
    re_path(r"^Users/\.search$", scim.UserSearch.as_view(), name="users-search"),
    re_path(r"^Users(?:/(?P<uuid>[^/]+))?$", scim.Users.as_view(), name="users"),
    re_path(r"^Groups/\.search$", scim.GroupSearch.as_view(), name="groups-search"),
    re_path(r"^Groups(?:/(?P<uuid>[^/]+))?$", scim.Groups.as_view(), name="groups"),
    re_path(r"^Me$", scim.NotImplemented.as_view(), name="me"),
    re_path(r"^ServiceProviderConfig$", scim.Config.as_view(), name="service-provider-config"),
    re_path(r"^ResourceTypes(?:/(?P<uuid>[^/]+))?$", scim.ResourceTypes.as_view(), name="resource-types"),
    re_path(r"^Schemas(?:/(?P<uuid>[^/]+))?$", scim.Schemas.as_view(), name="schemas"),
    re_path(r"^Bulk$", scim.NotImplemented.as_view(), name="bulk"),
]

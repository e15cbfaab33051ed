"""Akeru's versioned API, ``/api/v1/`` (docs/api.md): Django REST framework views over the services.

DRF settings (``REST_FRAMEWORK`` in ``worker/settings.py``), DRF's defaults except the following — which
the API's views also set themselves (``base.AkeruPolicy``), so a host project that forgets the setting
never gets DRF's defaults (Basic authentication, anyone allowed, the browsable pages):

- ``DEFAULT_AUTHENTICATION_CLASSES``: ``Authorization: Bearer`` (Akeru's tokens, checked by
  ``vending.token_user``) first — its ``WWW-Authenticate`` makes a call without credentials a 401 — then
  the browser session with CSRF; no Basic authentication (passwords never reach the API).
- ``DEFAULT_PERMISSION_CLASSES``: ``IsAuthenticated`` (DRF's default allows anyone); the operators'
  endpoints add Django model permissions.
- ``DEFAULT_RENDERER_CLASSES``: JSON only. The browsable API would render credentials into an HTML page
  (kept in a browser's history, and another page to secure); ``/api/v1/docs/`` is the reference page.
- ``EXCEPTION_HANDLER``: every error as ``{"code", "detail"}`` (``errors.py``).
- ``DEFAULT_SCHEMA_CLASS``: drf-spectacular's, for ``/api/v1/schema/``.
- ``UNAUTHENTICATED_USER``: kept (``AnonymousUser``); pagination is set per view (operators' lists only).

No throttle classes: a wrong MFA code is throttled by the MFA check itself (django-otp), and a vend costs
one STS call; the vend endpoints answer as ``/access/`` does. ``Cache-Control: no-store`` is on every answer
(``base.NoStore``), errors included.
"""

"""The API's own exceptions (importable by the authentication classes, which DRF loads while its views
module is still importing: nothing here imports ``rest_framework.views``)."""

from rest_framework import exceptions


class Problem(exceptions.APIException):
    """An error with Akeru's own ``code`` (DRF's exceptions are named by their class)."""

    def __init__(self, status_code, code, detail, **extra):
        super().__init__(detail, code)
        self.status_code = status_code
        self.error_code = code
        self.extra = extra


class TokenRefused(exceptions.AuthenticationFailed):
    """The ``Authorization: Bearer`` token was refused (401, with ``WWW-Authenticate``); ``code`` is the
    token check's (``InvalidToken``, ``TokenExpired``)."""

    def __init__(self, refusal):
        super().__init__(str(refusal), refusal.code)
        self.error_code = refusal.code

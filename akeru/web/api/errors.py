"""One shape for every error the API gives: ``{"code": "...", "detail": "..."}`` (and, for a form that did
not validate, ``"errors": {field: [messages]}``), with ``code`` stable for programs to branch on.

``code`` is the vending refusal's own (``AccessDenied``, ``MFARequired``, ``MFAInvalid``, ``AmbiguousName``,
``PrincipalUnavailable``, ``PasskeyRequired``, …; ``InvalidToken``/``TokenExpired`` from the token check),
``RequestRefused``/``RequestClosed`` for access-request rules, or DRF's exception's class name
(``NotAuthenticated``, ``ValidationError``, ``NotFound``, ``MethodNotAllowed``, ``Throttled``,
``PermissionDenied``, ``ParseError``, ``UnsupportedMediaType``, ``NotAcceptable``). Anything else is a bug:
logged, and answered ``ServerError`` (500) without its text.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from ...services import requests as request_service
from ...services import vending
from .problems import Problem

log = logging.getLogger(__name__)


def refused(request, error):
    """A vending ``Refused`` (403) or ``Failed`` (502) as an API error; where the person must first enrol a
    second factor, ``detail`` says where."""
    detail = str(error)
    if getattr(error, "mfa_enrol", False):
        detail = f"{detail} Enrol at {request.build_absolute_uri(reverse('akeru:mfa'))}"
    return Problem(error.status, getattr(error, "code", "") or "Error", detail)


def _translate(exc, context):
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, (vending.Refused, vending.Failed)):
        return refused(context["request"], exc)
    if isinstance(exc, request_service.RequestClosed):
        return Problem(status.HTTP_409_CONFLICT, "RequestClosed", str(exc), messages=exc.messages)
    if isinstance(exc, request_service.RequestRefused):
        return Problem(status.HTTP_403_FORBIDDEN, "RequestRefused", str(exc), messages=exc.messages)
    return exc


def _messages(value):
    """DRF's nested error details as plain lists of strings by field."""
    if isinstance(value, dict):
        return {str(key): _messages(item) for key, item in value.items()}
    if isinstance(value, list):
        return [text for item in value for text in (_messages(item) if isinstance(item, list) else [str(item)])]
    return [str(value)]


def _validation_body(exc):
    errors = _messages(exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail})
    sentences = []
    for field, messages in errors.items():
        text = " ".join(messages) if isinstance(messages, list) else str(messages)
        sentences.append(text if field == "non_field_errors" else f"{field}: {text}")
    return {"code": "ValidationError", "detail": " ".join(sentences) or "Invalid input.", "errors": errors}


def exception_handler(exc, context):
    """``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: DRF's handler (status, ``WWW-Authenticate``, ``Retry-After``,
    the rollback of the request's transaction), then the body in Akeru's shape."""
    exc = _translate(exc, context)
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unexpected error in %s", context["request"].path, exc_info=exc)
        set_rollback()
        return Response({"code": "ServerError", "detail": "Akeru could not answer this request; nothing was "
                         "handed out. Try again, or tell an administrator."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc)
        return response
    detail = exc.detail
    text = " ".join(str(item) for item in detail) if isinstance(detail, list) else str(detail)
    response.data = {"code": getattr(exc, "error_code", None) or type(exc).__name__, "detail": text,
                     **getattr(exc, "extra", {})}
    return response

"""Each request named in the log lines it causes (``AKERU_LOG_FORMAT=json``; docs/operations.md "Logs").

``connect()`` (from ``akeru.apps``): when Django starts a request (``request_started``, before any
middleware) its id is bound — the incoming ``X-Request-ID`` when that is a sane short token (a proxy's or
a client's, so their logs and ours join), else a new one — and when the response is closed
(``request_finished``) the context is cleared, so Django's own lines about the answer ("Not Found: …")
name the request too. ``RequestContext``, first in ``MIDDLEWARE``, echoes the id in the response's
``X-Request-ID`` and adds the signed-in user's id once authentication has run. ``akeru.outbox.publish``
carries the id into the message headers of every task the request publishes.
"""

from django.core.signals import request_finished, request_started

from .. import logs


ENVIRON_KEY = "akeru.request_id"  # where _begin leaves the id for the middleware


def _begin(sender, environ=None, **kwargs):
    environ = environ if environ is not None else {}
    environ[ENVIRON_KEY] = logs.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
    logs.begin(request_id=environ[ENVIRON_KEY])


def _end(sender, **kwargs):
    logs.clear()


def connect():
    request_started.connect(_begin, dispatch_uid="akeru.web.context.begin")
    request_finished.connect(_end, dispatch_uid="akeru.web.context.end")


class RequestContext:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request.META.get(ENVIRON_KEY)
        if request_id is None:  # a handler that sent no request_started: the id for this chain only
            request.request_id = logs.request_id_from(request.headers.get(logs.REQUEST_ID_HEADER))
            with logs.bound(request_id=request.request_id):
                response = self.get_response(request)
        else:
            request.request_id = request_id
            response = self.get_response(request)
            _bind_user(request)  # for Django's line about the answer when no view ran (a 404)
        response[logs.REQUEST_ID_HEADER] = request.request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        """After every middleware's way in (the session and user are known), before the view."""
        _bind_user(request)


def _bind_user(request):
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        logs.bind(user_id=user.pk)  # cleared with the request id when the request ends

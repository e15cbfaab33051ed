"""A small, real stand-in for Slack on 127.0.0.1, for the demo and the tests (Flask).

It answers Slack's Web API at ``/api/<method>`` as Slack does (``{"ok": true, …}`` or ``{"ok": false, "error":
"channel_not_found"}``; the bot token checked: ``not_authed`` without one, ``invalid_auth`` for a wrong one) for
the methods Akeru calls: ``auth.test``, ``chat.postMessage`` (answers the ``ts``, keeps the metadata),
``chat.update``, ``chat.postEphemeral``, ``conversations.history`` (with metadata when asked), ``conversations.open``,
``users.info``, ``users.lookupByEmail``, ``views.open``. It knows the demo people as Slack users ``U_ADMIN``,
``U_ALICE``, ``U_BOB`` (their demo emails) and a few the tests need: a bot, a guest, a deleted user, one whose
email is not confirmed, one Akeru does not know, one of another workspace in a shared channel, and a Slack
Connect stranger (``is_stranger``). ``GET /_calls`` answers every call received as a JSON list
of ``{"method", "args"}`` (tokens are never recorded).

It also plays Slack's side of interactions: the channel page (``GET /``, ``GET /channels/<id>``) shows the
messages with their buttons; a click "as" a Slack user sends a signed ``block_actions`` payload to Akeru's
Request URL the way Slack does (form field ``payload``; ``X-Slack-Signature`` = ``v0=`` HMAC-SHA256 of
``v0:<timestamp>:<body>`` with the signing secret), and the modal Akeru opens is shown as a form whose
submission sends the ``view_submission``. Tests use the same helpers (``click``, ``submit``,
``signed_post``).

    python -m devtools.slack --port 5003 --token xoxb-… --signing-secret … --interactions-url http://…/
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import html
import itertools
import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from flask import Flask, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

try:  # Socket Mode's websocket (the demo extra); without it apps.connections.open answers not_implemented
    from websockets.sync.server import serve as websocket_serve
except ImportError:  # pragma: no cover
    websocket_serve = None

TEAM_ID = "T_AKERU_DEMO"
CHANNEL = "C_AKERU"  # the demo's channel, where requests are posted
PRIVATE = "C_PRIVATE"  # a channel the app is not in (not_in_channel)
BOT_USER = "U_AKERU_APP"


def _user(uid, name, email, **flags):
    return {"id": uid, "team_id": TEAM_ID, "name": name, "real_name": name.title(), "deleted": False,
            "is_bot": False, "is_app_user": False, "is_restricted": False, "is_ultra_restricted": False,
            "is_email_confirmed": True, **flags,
            "profile": {"email": email, "real_name": name.title(), "display_name": name}}


USERS = {u["id"]: u for u in (
    _user("U_ADMIN", "admin", "admin@example.com"),
    _user("U_ALICE", "alice", "alice@example.com"),
    _user("U_BOB", "bob", "bob@example.com"),
    # for the tests: each has the email of an Akeru approver the test creates, and one thing wrong
    _user("U_BOT", "deploybot", "bot@example.com", is_bot=True),
    _user("U_GUEST", "guest", "guest@example.com", is_restricted=True),
    _user("U_GONE", "gone", "gone@example.com", deleted=True),
    _user("U_UNCONFIRMED", "unconfirmed", "unconfirmed@example.com", is_email_confirmed=False),
    _user("U_STRANGER", "stranger", "stranger@example.com"),
    _user("U_OTHER_TEAM", "otherteam", "otherteam@example.com", team_id="T_OTHER"),  # a shared channel's member
    _user("U_EXTERNAL", "external", "external@example.com", team_id="T_PARTNER", is_stranger=True),
)}


# --- signing, as Slack signs ------------------------------------------------------------------------


def signature(secret, timestamp, body):
    """Slack's ``X-Slack-Signature`` of ``body`` (bytes or text) sent at ``timestamp``."""
    body = body.decode() if isinstance(body, bytes) else body
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_request(secret, payload, timestamp=None):
    """``(body, headers)`` of an interaction as Slack posts it: form field ``payload``, signed."""
    timestamp = str(int(time.time()) if timestamp is None else int(timestamp))
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    return body, {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": timestamp,
                  "X-Slack-Signature": signature(secret, timestamp, body)}


def signed_post(url, secret, payload, timestamp=None, retry_num=None):
    """POST ``payload`` to ``url`` signed with ``secret``; returns ``(status, text of the answer)``."""
    body, headers = signed_request(secret, payload, timestamp)
    if retry_num is not None:
        headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def block_actions(user, channel, message, action_id, trigger_id, team_id=TEAM_ID, user_team_id=None):
    """The payload Slack sends when ``user`` (a user object) clicks button ``action_id`` of ``message`` in
    workspace ``team_id`` (``user.team_id`` is ``user_team_id``, by default the same)."""
    button = next((e for b in message.get("blocks") or [] if b.get("type") == "actions"
                   for e in b.get("elements") or [] if e.get("action_id") == action_id), {})
    return {
        "type": "block_actions", "team": {"id": team_id, "domain": "akeru-demo"},
        "user": {"id": user["id"], "username": user["name"], "name": user["name"], "team_id": user_team_id or team_id},
        "api_app_id": "A_AKERU", "token": "legacy-verification-token-unused", "trigger_id": trigger_id,
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": channel.lower()}, "message": message,
        "response_url": "", "actions": [{"type": "button", "action_id": action_id, "block_id": "akeru_decision",
                                          "value": button.get("value", ""), "action_ts": f"{time.time():.6f}",
                                          "text": button.get("text", {})}],
    }


def view_submission(user, view, values, team_id=TEAM_ID, user_team_id=None):
    """The payload Slack sends when ``user`` submits modal ``view`` with ``values`` ``{block_id: text}``."""
    state = {"values": {}}
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            element = block.get("element") or {}
            state["values"][block["block_id"]] = {element.get("action_id"): {
                "type": element.get("type", "plain_text_input"), "value": values.get(block["block_id"])}}
    return {
        "type": "view_submission", "team": {"id": team_id, "domain": "akeru-demo"},
        "user": {"id": user["id"], "username": user["name"], "name": user["name"], "team_id": user_team_id or team_id},
        "api_app_id": "A_AKERU", "trigger_id": f"{secrets.randbelow(10**10)}.trigger",
        "view": {**view, "state": state, "hash": secrets.token_hex(8)},
    }


# --- the stand-in -----------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


def _as_json(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SlackStandIn:
    """The stand-in. ``start()`` serves in a background thread; ``api_url`` is the SDK's ``base_url``."""

    def __init__(self, token, signing_secret, team_id=TEAM_ID, interactions_url="", port=0, host="127.0.0.1",
                 app_token=""):
        self.token, self.app_token, self.signing_secret, self.team_id = token, app_token, signing_secret, team_id
        self.interactions_url = interactions_url
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self.reset()
        self._socket_ready = threading.Condition(self._lock)
        self.sockets, self.acks = [], {}
        self.app = self._make_app()
        self.server = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self.websocket = websocket_serve(self._socket_connection, host, 0) if websocket_serve else None
        self.thread = None

    @property
    def url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self):
        return f"{self.url}/api/"

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name="slack-stand-in", daemon=True)
        self.thread.start()
        if self.websocket is not None:
            threading.Thread(target=self.websocket.serve_forever, name="slack-stand-in-socket", daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self.websocket is not None:
            self.websocket.shutdown()

    # --- Socket Mode: Slack's side of the websocket ---

    def _socket_connection(self, websocket):
        """One app connection (the URL apps.connections.open handed out): hello, then the apps' acks."""
        websocket.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A_AKERU"},
                                   "debug_info": {"host": "slack-stand-in"}}))
        with self._socket_ready:
            self.sockets.append(websocket)
            self._socket_ready.notify_all()
        try:
            for text in websocket:
                ack = json.loads(text)
                with self._socket_ready:
                    self.acks[ack.get("envelope_id")] = ack
                    self._socket_ready.notify_all()
        except Exception:  # noqa: BLE001 - the app went away; forget the connection
            pass
        finally:
            with self._socket_ready:
                if websocket in self.sockets:
                    self.sockets.remove(websocket)

    def wait_for_socket(self, timeout=30):
        """Whether an app is connected by Socket Mode (waits up to ``timeout`` seconds for one)."""
        with self._socket_ready:
            return self._socket_ready.wait_for(lambda: self.sockets, timeout)

    def deliver_socket(self, payload, retry_attempt=0, timeout=30):
        """Send ``payload`` in an envelope over the app's connection; returns its ack (or raises TimeoutError)."""
        envelope = str(uuid.uuid4())
        if not self.wait_for_socket(timeout):
            raise TimeoutError("no app is connected by Socket Mode")
        with self._socket_ready:
            websocket = self.sockets[-1]
        websocket.send(json.dumps({"envelope_id": envelope, "type": "interactive", "accepts_response_payload": True,
                                   "payload": payload, "retry_attempt": retry_attempt,
                                   "retry_reason": "timeout" if retry_attempt else ""}))
        with self._socket_ready:
            if not self._socket_ready.wait_for(lambda: envelope in self.acks, timeout):
                raise TimeoutError(f"the app did not acknowledge envelope {envelope}")
            return self.acks.pop(envelope)

    def _send(self, payload, timestamp=None, secret=None, retry_num=None):
        """Deliver an interaction the way the app is set up: ``(status, answer text)``."""
        if self.mode == "socket":
            ack = self.deliver_socket(payload, retry_attempt=retry_num or 0)
            return 200, json.dumps(ack["payload"]) if ack.get("payload") else ""
        return signed_post(self.interactions_url, secret or self.signing_secret, payload, timestamp, retry_num)

    def reset(self):
        """Forget every call, message, modal and fault (the users are the demo's again)."""
        with getattr(self, "_lock", threading.Lock()):
            self.users = copy.deepcopy(USERS)
            self.channels = {CHANNEL: {"name": "akeru-requests", "member": True, "messages": []},
                             PRIVATE: {"name": "private", "member": False, "messages": []}}
            self.calls, self.ephemerals, self.answers = [], [], []
            self.triggers, self.views, self.submissions = {}, {}, []
            self.faults = {}  # method -> [(error, HTTP status, Retry-After)], used in turn
            self.mode = "http"  # how interactions reach Akeru: "http" (its Request URL) or "socket" (Socket Mode)

    # --- what tests and the page ask ---

    def fail(self, method, error, status=200, retry_after=None, times=1):
        """Answer the next ``times`` calls of ``method`` with ``error`` (and HTTP ``status``)."""
        self.faults.setdefault(method, []).extend([(error, status, retry_after)] * times)

    def calls_of(self, method):
        return [c["args"] for c in self.calls if c["method"] == method]

    def messages(self, channel=CHANNEL):
        return self.channels[channel]["messages"]

    def message(self, ts, channel=CHANNEL):
        return next((m for m in self.messages(channel) if m["ts"] == ts), None)

    def click(self, user_id, ts, action_id, channel=CHANNEL, team_id=None, timestamp=None, secret=None,
              retry_num=None, user_team_id=None):
        """``user_id`` clicks button ``action_id`` of message ``ts``: a signed ``block_actions`` to Akeru.
        Returns ``(status, answer text, the id of the modal Akeru opened or None)``."""
        trigger = f"{secrets.randbelow(10**10)}.{secrets.token_hex(6)}"
        with self._lock:
            self.triggers[trigger] = {"user": user_id, "used": False, "view": None}
        payload = block_actions(self.users[user_id], channel, self.message(ts, channel), action_id, trigger,
                                team_id or self.team_id, user_team_id)
        status, text = self._send(payload, timestamp, secret, retry_num)
        return status, text, self.triggers[trigger]["view"]

    def submit(self, user_id, view_id, comment="", team_id=None, retry_num=None, user_team_id=None):
        """``user_id`` submits modal ``view_id`` with ``comment``: a signed ``view_submission`` to Akeru.
        Returns ``(status, the JSON answer or None)``; the modal shows errors or Akeru's new view."""
        opened = self.views[view_id]
        payload = view_submission(self.users[user_id], opened["view"], {"comment": comment}, team_id or self.team_id,
                                  user_team_id)
        return self._submitted(view_id, payload, retry_num)

    def replay(self, retry_num=1):
        """Send the last submission again, as it was (Slack's retry, or an attacker's replay freshly signed)."""
        view_id, payload = self.submissions[-1]
        return self._submitted(view_id, payload, retry_num)

    def _submitted(self, view_id, payload, retry_num):
        opened = self.views[view_id]
        self.submissions.append((view_id, payload))
        status, text = self._send(payload, retry_num=retry_num)
        answer = json.loads(text) if text.strip().startswith("{") else None
        with self._lock:
            self.answers.append(answer)
            if answer and answer.get("response_action") == "errors":
                opened["errors"] = answer.get("errors") or {}
            elif answer and answer.get("response_action") == "update":
                opened.update(view={**answer["view"], "id": view_id}, errors={})
            else:
                opened["closed"] = True
        return status, answer

    # --- the Web API ---

    def _call(self, method, args, auth):
        if method in self.faults and self.faults[method]:
            error, status, retry_after = self.faults[method].pop(0)
            return {"ok": False, "error": error}, status, ({"Retry-After": str(retry_after)} if retry_after else {})
        wanted = self.app_token if method == "apps.connections.open" else self.token
        if not auth:
            return {"ok": False, "error": "not_authed"}, 200, {}
        if not hmac.compare_digest(auth, wanted or "-"):
            return {"ok": False, "error": "invalid_auth"}, 200, {}
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}, 200, {}
        with self._lock:
            return handler(args), 200, {}

    def _channel(self, channel_id, post=False):
        channel = self.channels.get(channel_id)
        if channel is None and str(channel_id).startswith("D_"):
            channel = self.channels.setdefault(channel_id, {"name": "dm", "member": True, "messages": []})
        if channel is None:
            return None, {"ok": False, "error": "channel_not_found"}
        if post and not channel["member"]:
            return None, {"ok": False, "error": "not_in_channel"}
        return channel, None

    def api_auth_test(self, args):
        return {"ok": True, "url": f"{self.url}/", "team": "Akeru demo", "user": "akeru", "team_id": self.team_id,
                "user_id": BOT_USER, "bot_id": "B_AKERU"}

    def api_chat_postMessage(self, args):
        channel, error = self._channel(args.get("channel"), post=True)
        if error:
            return error
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = {"type": "message", "user": BOT_USER, "ts": ts, "text": args.get("text", ""),
                   "blocks": _as_json(args.get("blocks")) or [], "metadata": _as_json(args.get("metadata")) or None}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        channel["messages"].append(message)
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": message}

    def api_chat_update(self, args):
        channel, error = self._channel(args.get("channel"), post=True)
        if error:
            return error
        message = next((m for m in channel["messages"] if m["ts"] == args.get("ts")), None)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.update(text=args.get("text", message["text"]), blocks=_as_json(args.get("blocks")) or [],
                       edited={"user": BOT_USER, "ts": f"{time.time():.6f}"})
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "text": message["text"]}

    def api_chat_postEphemeral(self, args):
        _, error = self._channel(args.get("channel"), post=True)
        if error:
            return error
        if args.get("user") not in self.users:
            return {"ok": False, "error": "user_not_found"}
        self.ephemerals.append({"channel": args["channel"], "user": args["user"], "text": args.get("text", "")})
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def api_conversations_history(self, args):
        channel, error = self._channel(args.get("channel"))
        if error:
            return error
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [m for m in reversed(channel["messages"]) if "thread_ts" not in m][:int(args.get("limit") or 100)]
        messages = [m if with_metadata else {k: v for k, v in m.items() if k != "metadata"} for m in messages]
        return {"ok": True, "messages": copy.deepcopy(messages), "has_more": False}

    def api_conversations_open(self, args):
        users = str(args.get("users", "")).split(",")
        if not users or users[0] not in self.users:
            return {"ok": False, "error": "user_not_found"}
        channel = f"D_{users[0]}"
        self._channel(channel)
        return {"ok": True, "channel": {"id": channel}}

    def api_users_info(self, args):
        user = self.users.get(args.get("user"))
        return {"ok": True, "user": copy.deepcopy(user)} if user else {"ok": False, "error": "user_not_found"}

    def api_users_lookupByEmail(self, args):  # noqa: N802 - Slack's method name
        email = str(args.get("email", "")).lower()
        user = next((u for u in self.users.values() if u["profile"]["email"].lower() == email and not u["deleted"]),
                    None)
        return {"ok": True, "user": copy.deepcopy(user)} if user else {"ok": False, "error": "users_not_found"}

    def api_apps_connections_open(self, args):
        if self.websocket is None:
            return {"ok": False, "error": "not_implemented"}
        port = self.websocket.socket.getsockname()[1]
        return {"ok": True, "url": f"ws://127.0.0.1:{port}/link/?ticket={secrets.token_hex(8)}&app_id=A_AKERU"}

    def api_views_open(self, args):
        trigger = self.triggers.get(args.get("trigger_id"))
        if trigger is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger["used"]:
            return {"ok": False, "error": "expired_trigger_id"}
        view = _as_json(args.get("view")) or {}
        view_id = f"V{secrets.token_hex(5).upper()}"
        trigger.update(used=True, view=view_id)
        self.views[view_id] = {"view": {**view, "id": view_id}, "user": trigger["user"], "errors": {}, "closed": False}
        return {"ok": True, "view": {**view, "id": view_id}}

    # --- HTTP ---

    def _make_app(self):
        app = Flask("slack-stand-in")
        stand_in = self

        @app.route("/api/<method>", methods=["GET", "POST"])
        def api(method):
            args = {**request.args.to_dict(), **request.form.to_dict(), **(request.get_json(silent=True) or {})}
            token = args.pop("token", "") or ""
            header = request.headers.get("Authorization", "")
            auth = header[7:] if header.startswith("Bearer ") else token
            with stand_in._lock:
                stand_in.calls.append({"method": method, "args": copy.deepcopy(args)})
            body, status, headers = stand_in._call(method, args, auth)
            return app.response_class(json.dumps(body), status=status, headers=headers, mimetype="application/json")

        @app.get("/_calls")
        def calls():
            return app.response_class(json.dumps(stand_in.calls), mimetype="application/json")

        @app.get("/")
        def index():
            return _page("Slack stand-in", "".join(
                f"<p><a href='/channels/{html.escape(cid)}'>#{html.escape(c['name'])}</a> ({len(c['messages'])} "
                "messages)</p>" for cid, c in stand_in.channels.items()) or "<p>No channels.</p>")

        @app.get("/channels/<cid>")
        def channel_page(cid):
            channel = stand_in.channels.get(cid)
            if channel is None:
                return _page("No such channel", ""), 404
            shown = "".join(_message_html(cid, m, stand_in.users) for m in channel["messages"])
            notes = "".join(f"<li>only {html.escape(e['user'])} sees: {_mrkdwn(e['text'])}</li>"
                            for e in stand_in.ephemerals if e["channel"] == cid)
            return _page(f"#{channel['name']}", (shown or "<p>No messages yet.</p>")
                         + (f"<h2>Ephemeral messages</h2><ul>{notes}</ul>" if notes else ""))

        @app.post("/channels/<cid>/click")
        def channel_click(cid):
            status, text, view_id = stand_in.click(request.form["as"], request.form["ts"], request.form["action"], cid)
            if view_id:
                return redirect(f"/views/{view_id}?channel={urllib.parse.quote(cid)}")
            if status != 200:
                return _page("Akeru refused the click", f"<p>HTTP {status}: {html.escape(text)}</p>"), 502
            return redirect(f"/channels/{cid}")

        @app.get("/views/<view_id>")
        def view_page(view_id):
            opened = stand_in.views.get(view_id)
            if opened is None:
                return _page("No such window", ""), 404
            return _page("Slack window", _view_html(view_id, opened, request.args.get("channel", CHANNEL)))

        @app.post("/views/<view_id>")
        def view_submit(view_id):
            opened = stand_in.views.get(view_id)
            if opened is None:
                return _page("No such window", ""), 404
            channel = request.args.get("channel", CHANNEL)
            status, answer = stand_in.submit(opened["user"], view_id, request.form.get("comment", ""))
            if status != 200:
                return _page("Akeru refused the submission", f"<p>HTTP {status}</p>"), 502
            if answer and answer.get("response_action") in ("errors", "update"):
                return redirect(f"/views/{view_id}?channel={urllib.parse.quote(channel)}")
            return redirect(f"/channels/{channel}")

        return app


# --- the pages -----------------------------------------------------------------------------------------


def _page(title, body):
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · Slack stand-in</title>"
            "</head><body style='font-family:sans-serif;max-width:48rem;margin:2rem auto'>"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>")


EMOJI = {":hourglass:": "⏳", ":white_check_mark:": "✅", ":no_entry:": "⛔", ":checkered_flag:": "🏁", ":zzz:": "💤",
         ":heavy_multiplication_x:": "✖", ":rotating_light:": "🚨", ":warning:": "⚠️"}


def _mrkdwn(text):
    """Enough of Slack's mrkdwn for the page: links, *bold*, `code`, a few emoji, line breaks (HTML-escaped first)."""
    text = html.unescape(str(text))  # Slack's &amp; &lt; &gt; escapes
    out = html.escape(text)
    for code, emoji in EMOJI.items():
        out = out.replace(code, emoji)
    out = re.sub(r"&lt;(https?://[^|&]+)\|([^&]+?)&gt;", r"<a href='\1'>\2</a>", out)
    out = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", out)
    out = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", out)
    return out.replace("\n", "<br>")


def _blocks_html(blocks):
    parts = []
    for block in blocks or []:
        kind = block.get("type")
        if kind == "header":
            parts.append(f"<h3>{html.escape(block['text']['text'])}</h3>")
        elif kind == "section":
            if block.get("text"):
                parts.append(f"<p>{_mrkdwn(block['text']['text'])}</p>")
            if block.get("fields"):
                parts.append("<table>" + "".join(
                    f"<tr><td>{_mrkdwn(f['text'])}</td></tr>" for f in block["fields"]) + "</table>")
        elif kind == "context":
            parts.append("<p style='color:#555'>" + " ".join(_mrkdwn(e.get("text", "")) for e in block["elements"])
                         + "</p>")
    return "".join(parts)


def _message_html(cid, message, users):
    buttons = [e for b in message.get("blocks") or [] if b.get("type") == "actions" for e in b.get("elements") or []]
    body = _blocks_html(message.get("blocks")) or f"<p>{_mrkdwn(message.get('text', ''))}</p>"
    if message.get("thread_ts"):
        body = f"<p style='margin-left:2rem'>↳ {_mrkdwn(message.get('text', ''))}</p>"
    if buttons:
        options = "".join(f"<option value='{html.escape(uid)}'{' selected' if uid == 'U_BOB' else ''}>"
                          f"{html.escape(u['name'])} ({html.escape(uid)})</option>" for uid, u in users.items())
        body += "".join(
            f"<form method='post' action='/channels/{html.escape(cid)}/click' style='display:inline'>"
            f"<input type='hidden' name='ts' value='{html.escape(message['ts'])}'>"
            f"<input type='hidden' name='action' value='{html.escape(b['action_id'])}'>"
            f"<label>as <select name='as'>{options}</select></label> "
            f"<button type='submit'>{html.escape(b['text']['text'])}</button></form> " for b in buttons)
    return f"<div style='border:1px solid #ccc;padding:.5rem 1rem;margin:.5rem 0' id='m{message['ts']}'>{body}</div>"


def _view_html(view_id, opened, channel):
    view = opened["view"]
    parts = [f"<h2>{html.escape(view.get('title', {}).get('text', ''))}</h2>"]
    inputs = []
    for block in view.get("blocks") or []:
        if block.get("type") == "input":
            error = opened["errors"].get(block["block_id"])
            inputs.append(f"<p><label>{html.escape(block['label']['text'])}<br><textarea name='{block['block_id']}' "
                          "rows='3' cols='60'></textarea></label></p>"
                          + (f"<p role='alert' style='color:#b00020'>{html.escape(error)}</p>" if error else ""))
        else:
            parts.append(_blocks_html([block]))
    back = f"<p><a href='/channels/{html.escape(channel)}'>Back to the channel</a></p>"
    if view.get("submit") and not opened.get("closed"):
        parts.append(f"<form method='post' action='/views/{html.escape(view_id)}?channel={html.escape(channel)}'>"
                     + "".join(inputs) + f"<button type='submit'>{html.escape(view['submit']['text'])}</button></form>")
    return "".join(parts) + back


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5003)
    parser.add_argument("--token", default=os.environ.get("AKERU_SLACK_BOT_TOKEN", ""),
                        help="the bot token Akeru must send (default: $AKERU_SLACK_BOT_TOKEN)")
    parser.add_argument("--app-token", default=os.environ.get("AKERU_SLACK_APP_TOKEN", ""),
                        help="the app-level token of Socket Mode (default: $AKERU_SLACK_APP_TOKEN)")
    parser.add_argument("--signing-secret", default=os.environ.get("AKERU_SLACK_SIGNING_SECRET", ""),
                        help="default: $AKERU_SLACK_SIGNING_SECRET")
    parser.add_argument("--team-id", default=TEAM_ID)
    parser.add_argument("--interactions-url", required=True, help="Akeru's Request URL")
    args = parser.parse_args(argv)
    if not args.token or not args.signing_secret:
        parser.error("give the bot token and the signing secret (or set AKERU_SLACK_BOT_TOKEN and "
                     "AKERU_SLACK_SIGNING_SECRET)")
    stand_in = SlackStandIn(args.token, args.signing_secret, args.team_id, args.interactions_url, port=args.port,
                            app_token=args.app_token).start()
    print(f"Slack stand-in {stand_in.url} (Web API {stand_in.api_url}, channel page {stand_in.url}/channels/{CHANNEL})",
          flush=True)
    stand_in.thread.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

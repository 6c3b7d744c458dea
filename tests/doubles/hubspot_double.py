"""A local HubSpot CRM v3 contacts server, so tests drive the official `hubspot` client over real HTTP.

Serves GET /account-info/v3/details (the portal the token belongs to: `portal_id`; 403 MISSING_SCOPES
when `account_details_scope` is False) and POST /crm/v3/objects/contacts/batch/upsert and /batch/read
with HubSpot's shapes: 200 with
results (each with the contact's id, properties, createdAt/updatedAt and `new`), 207 Multi-Status with
`errors` whose context.ids name the failing inputs (an invalid email, or an id in `reject_ids`), 400
VALIDATION_ERROR for more than 100 inputs, duplicate ids or (with `invalid_inputs = "400"`) any invalid
input, 401 INVALID_AUTHENTICATION, 429 RATE_LIMIT with the X-HubSpot-RateLimit-* headers, and 5xx.
A batch read by another idProperty works for the properties in `unique_properties` (none by default).

POST /crm/v3/objects/contacts/gdpr-delete ({"objectId": <id>} or {"objectId": <address>, "idProperty":
"email"}) removes the contact and answers 204; an unknown id answers 404 OBJECT_NOT_FOUND, an unknown
address 204 with the address added to `blocklisted`, as HubSpot does. Its bodies are in `gdpr_deletes`.

Each batch or GDPR delete request is answered according to the next mode from `script([...])`, then `default_mode`
("ok"); account details requests take theirs from `script_account_details([...])`, then "ok".
Contacts live in memory, keyed by the lower-cased email; `upserts` counts writes per contact.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "429", "429_daily", "500", "502", "503", "401", "drop")
ACCESS_TOKEN = "pat-na1-mailroom-test"
MAX_INPUTS = 100
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
READ_PATH = "/crm/v3/objects/contacts/batch/read"
ACCOUNT_DETAILS_PATH = "/account-info/v3/details"
GDPR_DELETE_PATH = "/crm/v3/objects/contacts/gdpr-delete"
PORTAL_ID = 62515
_EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[a-z]{2,}$", re.IGNORECASE)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(message: str, category: str, **extra) -> dict:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    upserts: int = 0

    def as_result(self, new: bool | None = None) -> dict:
        result = {"id": self.id, "properties": {**self.properties, "hs_object_id": self.id},
                  "createdAt": self.created_at, "updatedAt": self.updated_at, "archived": False}
        if new is not None:
            result["new"] = new
        return result


@dataclass
class Request:
    path: str
    status: int | None  # None: the connection was dropped
    inputs: int
    ids: list[str] = field(default_factory=list)
    body: dict | None = None  # the parsed JSON body (kept for GDPR deletes)


class HubSpotDouble:
    def __init__(self, default_mode: str = "ok", invalid_inputs: str = "207"):
        self.default_mode = default_mode
        self.invalid_inputs = invalid_inputs  # "207": the others are written; "400": the whole batch is refused
        self.reject_ids: set[str] = set()  # ids (emails) refused as invalid, as if they failed validation
        self.retry_after: str | None = None  # a Retry-After header on 429s; HubSpot usually sends none
        self.access_token = ACCESS_TOKEN
        self.portal_id = PORTAL_ID  # the account the token belongs to
        self.account_details_scope = True  # False: the token may not read the account details (403)
        self.contacts: dict[str, Contact] = {}
        self.unique_properties: set[str] = set()  # besides email: properties a batch read may be keyed by
        self.blocklisted: set[str] = set()  # addresses a GDPR delete by email found no contact for
        self._script: list[str] = []
        self._account_script: list[str] = []
        self._requests: list[Request] = []
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def script(self, modes: Sequence[str]) -> None:
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; use one of {MODES}")
        with self._lock:
            self._script.extend(modes)

    def script_account_details(self, modes: Sequence[str]) -> None:
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; use one of {MODES}")
        with self._lock:
            self._account_script.extend(modes)

    def account_details(self) -> tuple[int, dict]:
        if not self.account_details_scope:
            return 403, _error(
                "This app hasn't been granted all required scopes to make this call. Read more about required "
                "scopes here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES",
                errors=[{"message": "One or more of the following scopes are required.",
                         "context": {"requiredGranularScopes": ["account-info.details.read"]}}],
                links={"scopes": "https://developers.hubspot.com/scopes"})
        return 200, {"portalId": self.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
                     "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
                     "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"}

    def add_contact(self, email: str, properties: dict[str, str] | None = None) -> Contact:
        with self._lock:
            now = _now()
            contact = Contact(str(next(self._ids)), {"email": email.lower(), **(properties or {})}, now, now)
            self.contacts[email.lower()] = contact
            return contact

    @property
    def gdpr_deletes(self) -> list[dict]:
        """The bodies of the GDPR delete requests received, in order (whatever they were answered)."""
        with self._lock:
            return [r.body for r in self._requests if r.path == GDPR_DELETE_PATH and r.body is not None]

    def gdpr_delete(self, body: dict) -> tuple[int, dict | None]:
        """Remove the contact by id (404 when there is none) or by email (blocklist an unknown address)."""
        object_id, id_property = body.get("objectId"), body.get("idProperty")
        if not isinstance(object_id, str) or not object_id:
            return 400, _error("Invalid input JSON: objectId is required", "VALIDATION_ERROR")
        with self._lock:
            if id_property == "email":
                if self.contacts.pop(object_id.lower(), None) is None:
                    self.blocklisted.add(object_id.lower())
                return 204, None
            if id_property not in (None, "hs_object_id"):
                return 400, _error(f"Unable to perform GDPR delete by non-unique property {id_property}",
                                   "VALIDATION_ERROR")
            email = next((e for e, c in self.contacts.items() if c.id == object_id), None)
            if email is None:
                return 404, _error("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                                   context={"id": [object_id]})
            del self.contacts[email]
        return 204, None

    def _next_mode(self) -> str:
        with self._lock:
            return self._script.pop(0) if self._script else self.default_mode

    def _next_account_mode(self) -> str:
        with self._lock:
            return self._account_script.pop(0) if self._account_script else "ok"

    def _log(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def invalid_reason(self, value: str) -> dict | None:
        """HubSpot's per-property validation result for an id, or None when valid."""
        if value.lower() in self.reject_ids or not _EMAIL.match(value):
            return {"isValid": False, "message": f"Email address {value} is invalid", "error": "INVALID_EMAIL",
                    "name": "email"}
        return None

    def upsert(self, inputs: list[dict]) -> tuple[int, dict]:
        started = _now()
        problems = self._batch_problems(inputs)
        if problems:
            return 400, problems
        invalid = {}
        for item in inputs:
            problem = self.invalid_reason(str(item["id"]))
            if problem:
                invalid[str(item["id"])] = problem
        if invalid and self.invalid_inputs == "400":
            first = next(iter(invalid.values()))
            return 400, _error(f"Property values were not valid: {json.dumps([first])}", "VALIDATION_ERROR")
        results = []
        with self._lock:
            for item in inputs:
                value = str(item["id"])
                if value in invalid:
                    continue
                now, contact = _now(), self.contacts.get(value.lower())
                new = contact is None
                if new:
                    contact = Contact(str(next(self._ids)), {"email": value.lower()}, now, now)
                    self.contacts[value.lower()] = contact
                contact.properties.update(item.get("properties") or {})
                contact.updated_at, contact.upserts = now, contact.upserts + 1
                results.append(contact.as_result(new))
        body = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}
        if not invalid:
            return 200, body
        body["numErrors"] = len(invalid)
        body["errors"] = [{
            "status": "error", "category": "VALIDATION_ERROR",
            "message": f"Property values were not valid: {json.dumps([problem])}",
            "context": {"ids": [value]},
            "errors": [{"message": problem["message"], "code": problem["error"], "in": "email"}],
        } for value, problem in invalid.items()]
        return 207, body

    def read(self, body: dict) -> tuple[int, dict]:
        started = _now()
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            return 400, _error("Invalid input JSON: inputs is required", "VALIDATION_ERROR")
        if len(inputs) > MAX_INPUTS:
            return 400, self._too_many(len(inputs))
        id_property = body.get("idProperty")
        if id_property not in (None, "email", *self.unique_properties):
            return 400, _error(f"Unable to perform read by non-unique property {id_property}",
                               "VALIDATION_ERROR")
        with self._lock:
            if id_property in (None, "email"):
                by_value = self.contacts
            else:
                by_value = {str(c.properties[id_property]).lower(): c for c in self.contacts.values()
                            if c.properties.get(id_property) is not None}
            found = [by_value[str(i.get("id")).lower()] for i in inputs if str(i.get("id")).lower() in by_value]
            missing = [str(i.get("id")) for i in inputs if str(i.get("id")).lower() not in by_value]
        answer = {"status": "COMPLETE", "results": [c.as_result() for c in found], "startedAt": started,
                  "completedAt": _now()}
        if not missing:
            return 200, answer
        answer["numErrors"] = 1
        answer["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                             "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                                        "Check that ids are valid.", "context": {"ids": missing}}]
        return 207, answer

    def _batch_problems(self, inputs) -> dict | None:
        if not isinstance(inputs, list) or not inputs:
            return _error("Invalid input JSON: inputs must be a non-empty array", "VALIDATION_ERROR")
        if len(inputs) > MAX_INPUTS:
            return self._too_many(len(inputs))
        for item in inputs:
            if not isinstance(item, dict) or "id" not in item:
                return _error("Invalid input JSON: every input needs an id", "VALIDATION_ERROR")
            if item.get("idProperty") != "email":
                return _error(f"Unable to perform update/upsert by non-unique 0-1 property {item.get('idProperty')}",
                              "VALIDATION_ERROR")
        ids = [str(item["id"]).lower() for item in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return _error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique", "VALIDATION_ERROR")
        return None

    @staticmethod
    def _too_many(count: int) -> dict:
        return _error(f"Batch input size {count} exceeds the limit of {MAX_INPUTS} inputs per request",
                      "VALIDATION_ERROR", context={"inputs": [str(count)], "limit": [str(MAX_INPUTS)]})

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="hubspot-double", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubSpotDouble:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _rate_limit_headers(remaining: int) -> dict[str, str]:
    return {"X-HubSpot-RateLimit-Daily": "500000", "X-HubSpot-RateLimit-Daily-Remaining": "499000",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": str(remaining)}


def _handler_for(double: HubSpotDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            request = Request(self.path.split("?")[0], None, 0)
            if request.path != ACCOUNT_DETAILS_PATH:
                return self._send(request, 404, _error(f"Unable to route GET {request.path}", "OBJECT_NOT_FOUND"))
            mode = double._next_account_mode()
            if mode == "drop":
                double._log(request)
                self.close_connection = True
                return
            if self._refused(request, mode):
                return
            self._send(request, *double.account_details())

        def _refused(self, request: Request, mode: str) -> bool:
            """Answer the failure `mode` or a wrong token asks for; False when the request may proceed."""
            if mode == "401" or self.headers.get("Authorization") != f"Bearer {double.access_token}":
                self._send(request, 401, _error(
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    "INVALID_AUTHENTICATION"))
                return True
            if mode in ("429", "429_daily"):
                policy = "DAILY" if mode == "429_daily" else "TEN_SECONDLY_ROLLING"
                limit = "daily" if mode == "429_daily" else "ten_secondly_rolling"
                headers = _rate_limit_headers(0)
                if double.retry_after is not None:
                    headers["Retry-After"] = double.retry_after
                self._send(request, 429, {"status": "error", "message": f"You have reached your {limit} limit.",
                                          "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                                          "policyName": policy, "requestId": str(uuid.uuid4())}, headers)
                return True
            if mode in ("500", "502", "503"):
                self._send(request, int(mode), _error("internal error" if mode == "500" else "Service Unavailable",
                                                      "INTERNAL_ERROR" if mode == "500" else "SERVICE_UNAVAILABLE"))
                return True
            return False

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = None
            inputs = body.get("inputs") if isinstance(body, dict) else None
            ids = [str(i.get("id")) for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []
            request = Request(self.path.split("?")[0], None, len(ids), ids)
            if request.path == GDPR_DELETE_PATH and isinstance(body, dict):
                request.body = body
            mode = double._next_mode()
            if mode == "drop":
                double._log(request)
                self.close_connection = True
                return
            if request.path not in (UPSERT_PATH, READ_PATH, GDPR_DELETE_PATH):
                return self._send(request, 404, _error(f"Unable to route POST {request.path}", "OBJECT_NOT_FOUND"))
            if self._refused(request, mode):
                return
            if not isinstance(body, dict):
                return self._send(request, 400, _error("Invalid input JSON on line 1", "VALIDATION_ERROR"))
            if request.path == READ_PATH:
                return self._send(request, *double.read(body))
            if request.path == GDPR_DELETE_PATH:
                return self._send(request, *double.gdpr_delete(body))
            self._send(request, *double.upsert(inputs))

        def _send(self, request: Request, status: int, payload: dict | None, headers: dict | None = None):
            request.status = status
            double._log(request)
            data = json.dumps(payload).encode() if payload is not None else b""
            try:
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in {**_rate_limit_headers(100), **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler

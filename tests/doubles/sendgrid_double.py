"""A local SendGrid v3 Mail Send server, so tests drive the real `sendgrid` client over real HTTP.

POST /v3/mail/send is authenticated, size-limited and validated the way SendGrid does it, with
SendGrid's status codes, field paths and error bodies, so `python_http_client` raises the same
exception classes it raises in production. Accepted personalizations are recorded as `Delivery`s
and, given `events_dir`, written out as Event Webhook "processed" events.

Each request is answered according to a mode, taken in order from `script([...])`, then (when
`transient_failure_rate` is set) a seeded random failure, then `default_mode`. `down = True`
answers every request 503 without consuming scripted modes, until it is set back to False.

The Cancel Scheduled Sends API is there too: POST /v3/mail/batch (201, a new batch_id), a batch_id
in a Mail Send body (400 when SendGrid never issued it), POST /v3/user/scheduled_sends {batch_id,
status: cancel|pause} (201; 400 when the batch already has a status) and PATCH
/v3/user/scheduled_sends/{batch_id} (204; 404 when it has none). A cancellation is honoured the way
SendGrid honours it: the batch's messages are discarded at their send_at, unless it came later than
10 minutes before that (then they may go out; here they do). `delivered` is what recipients get.
`invalid_addresses` are addresses SendGrid's own validator refuses (400 naming the field).

Marketing contacts and the global suppression list, for erasure: `add_contact(email)` puts a contact
in the in-memory store; POST /v3/marketing/contacts/search/emails {"emails": [...]} (at most 100)
answers 200 {"result": {<address as asked>: {"contact": {...}} or {"error": "contact not found"}}},
404 when none matches and 400 for an invalid address; DELETE /v3/marketing/contacts?ids=a,b answers
202 {"job_id": ...}, and the contacts go at once or, with `delete_after_searches = N`, stay visible to
the next N searches for them (its job is still running); POST /v3/asm/suppressions/global {"recipient_emails":
[...]} adds them to `global_suppressions` and answers 201 echoing the list. These requests take their
answer from the same modes as Mail Send (drop_before and the faults; drop_after drops the answer
after the work is done) and are recorded, with their bodies, in `marketing_calls`.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MODES = ("202", "400", "401", "413", "429", "500", "503", "slow", "drop_before", "drop_after", "down")
PATH = "/v3/mail/send"
API_KEY = "SG.test-key.mailroom"
MAX_BODY_BYTES = 30 * 1024 * 1024  # SendGrid's limit on a whole request, attachments included
MAX_PERSONALIZATIONS = 1000
MAX_SCHEDULE_SECONDS = 72 * 3600
CANCEL_DEADLINE_SECONDS = 600  # SendGrid cannot cancel a batch later than 10 minutes before its send_at
BATCH_PATH, SCHEDULED_SENDS_PATH = "/v3/mail/batch", "/v3/user/scheduled_sends"
CONTACTS_PATH, CONTACTS_SEARCH_PATH = "/v3/marketing/contacts", "/v3/marketing/contacts/search/emails"
GLOBAL_SUPPRESSIONS_PATH = "/v3/asm/suppressions/global"
MARKETING_PATHS = (CONTACTS_PATH, CONTACTS_SEARCH_PATH, GLOBAL_SUPPRESSIONS_PATH)
MAX_SEARCH_EMAILS = 100
RESERVED_HEADERS = frozenset({"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
                              "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc"})
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"

_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]+$")


def _errors(message: str) -> dict:
    return {"errors": [{"message": message, "field": None, "help": None}]}


# Answers that do not depend on the request: (status, body).
_FAULTS = {
    "400": (400, _errors("Bad Request")),
    "401": (401, {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, "
                                                        "or revoked", "help": None}]}),
    "413": (413, _errors("The total size of your email, including attachments, must be less than 30MB.")),
    "429": (429, {"errors": [{"field": None, "message": "too many requests"}]}),
    "500": (500, _errors("Internal Server Error")),
    "503": (503, _errors("Service Unavailable")),
    "down": (503, _errors("Service Unavailable")),
}


@dataclass
class Delivery:
    """One accepted personalization, as SendGrid would send it (substitutions applied)."""
    to: str  # the personalization's first `to` address (Mailroom sends one recipient per personalization)
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    send_at: int | None = None
    asm_group_id: int | None = None
    x_message_id: str = ""
    sg_message_id: str = ""
    batch_id: str | None = None
    cancelled: bool = False  # its batch was cancelled in time: SendGrid discards it at its send_at


@dataclass
class MarketingContact:
    id: str
    email: str
    created_at: str
    searches_left: int | None = None  # deleted by a job that is still running: visible to this many searches

    def as_json(self) -> dict:
        return {"id": self.id, "email": self.email, "first_name": "", "last_name": "", "alternate_emails": [],
                "address_line_1": "", "city": "", "country": "", "list_ids": [], "segment_ids": [],
                "custom_fields": {}, "created_at": self.created_at, "updated_at": self.created_at}


@dataclass
class MarketingCall:
    method: str
    path: str
    query: dict[str, str]
    body: dict | None
    status: int | None  # None: the connection was dropped


class SendGridDouble:
    def __init__(self, events_dir: Path | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 default_mode: str = "202", slow_seconds: float = 2.0):
        self.events_dir = events_dir
        self.max_body_bytes = max_body_bytes
        self.default_mode = default_mode
        self.slow_seconds = slow_seconds
        self.rate_limit_reset_seconds = 1
        self.down = False
        self.api_key = API_KEY
        self.on_accept: Callable[[list[Delivery]], None] | None = None
        self.invalid_addresses: set[str] = set()  # refused by SendGrid's validator (compared case-insensitively)
        self._batches: dict[str, str | None] = {}  # batch_id -> status (None, "cancel" or "pause")
        self._script: list[str] = []
        self._deliveries: list[Delivery] = []
        self._requests: list[tuple[int | None, int]] = []
        self._batch_calls: list[tuple[str, str, int]] = []
        self.contacts: dict[str, MarketingContact] = {}  # marketing contacts by id
        self.global_suppressions: set[str] = set()  # lower-cased addresses
        self.delete_after_searches = 0  # a deleted contact stays visible to this many searches
        self.delete_jobs: dict[str, list[str]] = {}  # job_id -> the contact ids it deletes
        self._marketing_calls: list[MarketingCall] = []
        self._fault_rate, self._fault_rng = 0.0, random.Random(0)
        self._lock = threading.Lock()
        self._closing = threading.Event()  # wakes "slow" handlers at shutdown
        self._message_numbers = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def deliveries(self) -> list[Delivery]:
        """Accepted personalizations, in acceptance order (a snapshot)."""
        with self._lock:
            return list(self._deliveries)

    @property
    def delivered(self) -> list[Delivery]:
        """What reaches recipients: accepted personalizations whose batch was not cancelled in time."""
        with self._lock:
            return [d for d in self._deliveries if not d.cancelled]

    @property
    def batch_statuses(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._batches)

    @property
    def requests(self) -> list[tuple[int | None, int]]:
        """(status, personalization count) per request; status None when the connection was dropped."""
        with self._lock:
            return list(self._requests)

    def script(self, modes: Sequence[str]) -> None:
        """Answer the next requests with these modes, in order; then the failure rate / `default_mode`."""
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; use one of {MODES}")
        with self._lock:
            self._script.extend(modes)

    def transient_failure_rate(self, p: float, seed: int = 0) -> None:
        """Fail each unscripted request with probability p, as a 429, 500 or 503 (reproducible by seed)."""
        with self._lock:
            self._fault_rate, self._fault_rng = p, random.Random(seed)

    def _next_mode(self) -> str:
        with self._lock:
            if self.down:
                return "down"
            if self._script:
                return self._script.pop(0)
            if self._fault_rate and self._fault_rng.random() < self._fault_rate:
                return self._fault_rng.choice(("429", "500", "503"))
            return self.default_mode

    def _record(self, status: int | None, count: int) -> None:
        with self._lock:
            self._requests.append((status, count))

    def _record_call(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._batch_calls.append((method, path, status))

    @property
    def batch_calls(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of each Cancel Scheduled Sends API call (Mail Send is in `requests`)."""
        with self._lock:
            return list(self._batch_calls)

    @property
    def marketing_calls(self) -> list[MarketingCall]:
        """Each marketing contacts and global suppression call, in order, with its body."""
        with self._lock:
            return list(self._marketing_calls)

    def _record_marketing(self, call: MarketingCall) -> None:
        with self._lock:
            self._marketing_calls.append(call)

    def add_contact(self, email: str) -> str:
        """A marketing contact for `email` (SendGrid keeps addresses lower-cased); its id."""
        contact = MarketingContact(str(uuid.uuid4()), email.strip().lower(),
                                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self._lock:
            self.contacts[contact.id] = contact
        return contact.id

    def search_contacts(self, body: dict) -> tuple[int, dict]:
        emails = body.get("emails")
        if not isinstance(emails, list) or not emails or len(emails) > MAX_SEARCH_EMAILS:
            return 400, {"errors": [{"field": "emails", "message": f"emails must hold 1 to {MAX_SEARCH_EMAILS} "
                                                                   "email addresses"}]}
        invalid = [i for i, e in enumerate(emails) if not _is_address(e)]
        if invalid:
            return 400, {"errors": [{"field": f"emails[{i}]", "message": "invalid email"} for i in invalid]}
        with self._lock:
            for contact_id in [c.id for c in self.contacts.values() if c.searches_left == 0]:
                del self.contacts[contact_id]  # its delete job has finished
            by_email = {c.email: c for c in self.contacts.values()}
            result, counted = {}, set()
            for email in emails:
                contact = by_email.get(email.strip().lower())
                if contact is None:
                    result[email] = {"error": "contact not found"}
                    continue
                result[email] = {"contact": contact.as_json()}
                if contact.searches_left is not None and contact.id not in counted:
                    contact.searches_left -= 1
                    counted.add(contact.id)
        if all("error" in r for r in result.values()):
            return 404, {"errors": [{"field": None, "message": "No contacts found"}]}
        return 200, {"result": result}

    def delete_contacts(self, query: dict[str, str]) -> tuple[int, dict]:
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids and query.get("delete_all_contacts") != "true":
            return 400, {"errors": [{"field": "ids", "message": "ids or delete_all_contacts is required"}]}
        job_id = str(uuid.uuid4())
        with self._lock:
            if not ids:
                ids = list(self.contacts)
            self.delete_jobs[job_id] = ids
            for contact_id in ids:
                if contact_id not in self.contacts:
                    continue
                if self.delete_after_searches:
                    contact = self.contacts[contact_id]
                    if contact.searches_left is None:
                        contact.searches_left = self.delete_after_searches
                else:
                    del self.contacts[contact_id]
        return 202, {"job_id": job_id}

    def suppress_globally(self, body: dict) -> tuple[int, dict]:
        emails = body.get("recipient_emails")
        if not isinstance(emails, list) or not emails:
            return 400, {"errors": [{"field": "recipient_emails", "message": "recipient_emails is required"}]}
        invalid = [e for e in emails if not _is_address(e) or str(e).lower() in
                   {a.lower() for a in self.invalid_addresses}]
        if invalid:
            return 400, {"errors": [{"field": "recipient_emails", "message": "one or more emails are invalid"}]}
        with self._lock:
            self.global_suppressions |= {e.lower() for e in emails}
        return 201, {"recipient_emails": emails}

    def _new_batch(self) -> str:
        batch_id = secrets.token_hex(16)
        with self._lock:
            self._batches[batch_id] = None
        return batch_id

    def _set_batch_status(self, batch_id, status: str, update: bool) -> int:
        """The status code for setting a batch's status (POST: a new status; PATCH: an update)."""
        now = int(time.time())
        with self._lock:
            if batch_id not in self._batches or (update and self._batches[batch_id] is None):
                return 404 if update else 400
            if not update and self._batches[batch_id] is not None:
                return 400
            self._batches[batch_id] = status
            if status == "cancel":
                for d in self._deliveries:
                    if d.batch_id == batch_id and (d.send_at or 0) - now >= CANCEL_DEADLINE_SECONDS:
                        d.cancelled = True
        return 204 if update else 201

    def _known_batch(self, batch_id) -> bool:
        with self._lock:
            return batch_id in self._batches

    def _accept(self, body: dict) -> tuple[str, list[Delivery]]:
        x_message_id = secrets.token_urlsafe(16)  # 22 characters, like SendGrid's
        with self._lock:
            new = [_delivery(body, p, x_message_id, f"{x_message_id}.filterdrecv-{next(self._message_numbers)}.0")
                   for p in body["personalizations"]]
            self._deliveries.extend(new)
        if self.events_dir is not None:
            _write_events(self.events_dir / f"sendgrid-{x_message_id}.jsonl", new)
        if self.on_accept is not None:
            self.on_accept(new)
        return x_message_id, new

    def start(self) -> None:
        # A short poll interval: shutdown() waits up to one interval, once per test.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="sendgrid-double",
                         daemon=True).start()

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SendGridDouble:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _handler_for(double: SendGridDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        _call: MarketingCall | None = None  # the marketing request being answered

        def log_message(self, format, *args):  # keep test output quiet
            pass

        def do_POST(self):
            mode = double._next_mode()
            if mode == "drop_before":
                double._record(None, 0)
                self.close_connection = True  # unread body and no answer: the client sees a reset
                return
            raw = self._read_body(int(self.headers.get("Content-Length") or 0))
            body = _parse(raw)
            count = len(body["personalizations"]) if isinstance(body.get("personalizations"), list) else 0
            path = self.path.split("?")[0]
            if path not in (PATH, BATCH_PATH, SCHEDULED_SENDS_PATH, CONTACTS_SEARCH_PATH, GLOBAL_SUPPRESSIONS_PATH):
                return self._send(404, {"errors": [{"field": None, "message": "Not Found"}]}, count)
            if path in MARKETING_PATHS:
                return self._marketing(mode, body if raw else None)
            if mode in _FAULTS:
                return self._send(*_FAULTS[mode], count)
            if self.headers.get("Authorization") != f"Bearer {double.api_key}":
                return self._send(*_FAULTS["401"], count)
            if path == BATCH_PATH:
                return self._send(201, {"batch_id": double._new_batch()}, 0)
            if path == SCHEDULED_SENDS_PATH:
                return self._scheduled_send(body.get("batch_id"), body.get("status"), update=False)
            if raw is None:
                return self._send(*_FAULTS["413"], count)
            if not body:
                return self._send(*_FAULTS["400"], count)
            problems = _validate(body, int(time.time()), double.invalid_addresses)
            if "batch_id" in body and not double._known_batch(body["batch_id"]):
                problems.append({"message": "The batch id is not valid.", "field": "batch_id", "help": None})
            if problems:
                return self._send(400, {"errors": problems}, count)
            if mode == "slow":
                double._closing.wait(double.slow_seconds)  # longer than the client's timeout
            x_message_id, _ = double._accept(body)
            if mode == "drop_after":
                double._record(None, count)
                self.close_connection = True  # accepted, but the client never learns it
                return
            self._send(202, None, count, {"X-Message-Id": x_message_id})

        def do_DELETE(self):
            mode = double._next_mode()
            self._read_body(int(self.headers.get("Content-Length") or 0))
            if self.path.split("?")[0] != CONTACTS_PATH:
                return self._send(404, {"errors": [{"field": None, "message": "Not Found"}]}, 0)
            return self._marketing(mode, None)

        def _marketing(self, mode: str, body: dict | None):
            """A marketing contacts or global suppression request, answered as `mode` says."""
            parts = urlsplit(self.path)
            self._call = MarketingCall(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                                       body, None)
            if mode == "drop_before":
                double._record_marketing(self._call)
                self.close_connection = True
                return
            if mode in _FAULTS:
                return self._send(*_FAULTS[mode], 0)
            if self.headers.get("Authorization") != f"Bearer {double.api_key}":
                return self._send(*_FAULTS["401"], 0)
            if mode == "slow":
                double._closing.wait(double.slow_seconds)
            if self.command == "DELETE":
                status, payload = double.delete_contacts(self._call.query)
            elif body is None:
                status, payload = _FAULTS["400"]
            elif parts.path == CONTACTS_SEARCH_PATH:
                status, payload = double.search_contacts(body)
            else:
                status, payload = double.suppress_globally(body)
            if mode == "drop_after":
                double._record_marketing(self._call)
                self.close_connection = True
                return
            return self._send(status, payload, 0)

        def do_PATCH(self):
            body = _parse(self._read_body(int(self.headers.get("Content-Length") or 0)))
            prefix = SCHEDULED_SENDS_PATH + "/"
            if not self.path.startswith(prefix):
                return self._send(404, {"errors": [{"field": None, "message": "Not Found"}]}, 0)
            if self.headers.get("Authorization") != f"Bearer {double.api_key}":
                return self._send(*_FAULTS["401"], 0)
            return self._scheduled_send(self.path[len(prefix):], body.get("status"), update=True)

        def _scheduled_send(self, batch_id, status, update: bool):
            if status not in ("cancel", "pause"):
                return self._send(400, {"errors": [{"field": "status",
                                                    "message": "status must be cancel or pause"}]}, 0)
            code = double._set_batch_status(batch_id, status, update)
            if code == 201:
                return self._send(201, {"batch_id": batch_id, "status": status}, 0)
            if code == 204:
                return self._send(204, None, 0)
            message = ("batch id not found" if code == 404 else
                       "a status for this batch id already exists or the batch id is not valid")
            return self._send(code, {"errors": [{"field": "batch_id", "message": message}]}, 0)

        def _read_body(self, length: int) -> bytes | None:
            """The body, or None when over the limit: read even then, so the client sees our 413, not a reset."""
            data = self.rfile.read(length)
            return data if length <= double.max_body_bytes else None

        def _send(self, status: int, payload: dict | None, count: int, headers: dict[str, str] | None = None):
            if self.path.split("?")[0] == PATH:
                double._record(status, count)
            elif self._call is not None:
                self._call.status = status
                double._record_marketing(self._call)
                self._call = None
            else:
                double._record_call(self.command, self.path.split("?")[0], status)
            if status == 429:
                headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                           "X-RateLimit-Reset": str(int(time.time()) + double.rate_limit_reset_seconds)}
            data = json.dumps(payload).encode() if payload is not None else b""
            try:
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                # One connection per request: shutdown never waits on an idle keep-alive socket.
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

    return Handler


def _parse(raw: bytes | None) -> dict:
    try:
        body = json.loads(raw) if raw is not None else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_address(value) -> bool:
    return isinstance(value, str) and bool(_ADDRESS.match(value))


def _has_subject(node) -> bool:
    return isinstance(node, dict) and isinstance(node.get("subject"), str) and bool(node["subject"])


def _validate(body: dict, now: int, invalid_addresses: set[str] = frozenset()) -> list[dict]:
    """Every problem SendGrid would report, in its error format (empty when the request is valid)."""
    problems: list[dict] = []

    def problem(message: str, where: str) -> None:
        problems.append({"message": message, "field": where, "help": f"{HELP}message.{where.split('.')[0]}"})

    def check_send_at(value, where: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            given = {str: "string", float: "number", bool: "boolean"}.get(type(value), type(value).__name__)
            problem(f"Invalid type. Expected: integer, given: {given}.", where)
        elif value > now + MAX_SCHEDULE_SECONDS:
            problem("Scheduling more than 72 hours in advance is forbidden.", where)

    def check_strings(mapping, where: str) -> None:  # custom_args and substitutions
        if not isinstance(mapping, dict) or any(not isinstance(v, str) for v in mapping.values()):
            problem("Invalid type. Expected an object whose values are all strings.", where)

    def check_headers(headers, where: str) -> None:
        if not isinstance(headers, dict):
            return problem("Invalid type. Expected: object.", where)
        for name in headers:
            if name.lower() in RESERVED_HEADERS:
                problem(f"The header {name} is reserved and cannot be set.", where)

    checks = (("send_at", check_send_at), ("custom_args", check_strings), ("substitutions", check_strings),
              ("headers", check_headers))
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problem("You must have at least one personalization.", "personalizations")
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        problem(f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per API request. "
                f"You have provided {len(personalizations)} personalizations. Please consider splitting this "
                "into multiple requests and resending your request.", "personalizations")
    seen: set[str] = set()  # SendGrid compares addresses case-insensitively, across to, cc and bcc
    for i, p in enumerate(personalizations):
        p = p if isinstance(p, dict) else {}
        if not isinstance(p.get("to"), list) or not p["to"]:
            problem("The to array is required for all personalization objects, and must have at least one email "
                    "object with a valid email address.", f"personalizations.{i}.to")
        for kind in ("to", "cc", "bcc"):
            for j, recipient in enumerate(p[kind] if isinstance(p.get(kind), list) else []):
                address = recipient.get("email") if isinstance(recipient, dict) else None
                if not _is_address(address) or str(address).lower() in {a.lower() for a in invalid_addresses}:
                    problem("Does not contain a valid address.", f"personalizations.{i}.{kind}.{j}.email")
                elif address.lower() in seen:
                    problem("Each unique email address in the personalizations array should only be included once. "
                            f"You have included {address} more than once.",
                            f"personalizations.{i}.{kind}.{j}.email")
                seen.add(str(address).lower())
        for key, check in checks:
            if key in p:
                check(p[key], f"personalizations.{i}.{key}")

    sender = body.get("from") if isinstance(body.get("from"), dict) else {}
    if "email" not in sender:
        problem('The from object must be provided for every email send. It is an object that requires the email '
                'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
                '{"email" : "example@example.com", "name" : "Example Recipient"}.', "from.email")
    elif not _is_address(sender["email"]):
        problem("The from email does not contain a valid address.", "from.email")
    if not _has_subject(body) and not (personalizations and all(map(_has_subject, personalizations))):
        problem("The subject is required. You can get around this requirement if you use a template with a "
                "subject defined or if every personalization has a subject defined.", "subject")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        problem("Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block. We typically suggest both text/plain and text/html blocks are "
                "included, but only one block is required.", "content")
    else:
        blocks = [b if isinstance(b, dict) else {} for b in content]
        if any(not isinstance(b.get("value"), str) or not b["value"] for b in blocks):
            problem("The content value must be a string at least one character in length.", "content")
        types = [b.get("type") for b in blocks]
        if "text/plain" in types and types[0] != "text/plain":
            problem("If present, text/plain content must be first, followed by text/html, followed by any other "
                    "content.", "content")
    for key, check in checks:
        if key in body:
            check(body[key], key)
    categories = body.get("categories", [])
    if not isinstance(categories, list) or len(categories) > 10:
        problem("The categories parameter may contain at most 10 categories.", "categories")
    for k, category in enumerate(categories if isinstance(categories, list) else []):
        if not isinstance(category, str) or len(category) > 255:
            problem("A category must be a string of at most 255 characters.", f"categories.{k}")
    if "asm" in body:
        group_id = body["asm"].get("group_id") if isinstance(body["asm"], dict) else None
        if not isinstance(group_id, int) or isinstance(group_id, bool):
            problem("The asm.group_id must be an integer.", "asm.group_id")
    return problems


def _delivery(body: dict, p: dict, x_message_id: str, sg_message_id: str) -> Delivery:
    substitutions = p.get("substitutions") or {}

    def substitute(text: str | None) -> str | None:
        for key, value in substitutions.items():
            text = text.replace(key, str(value)) if text is not None else None
        return text

    content: dict[str, str] = {}
    for block in body["content"]:
        content.setdefault(block.get("type"), block["value"])  # the first block of each type
    return Delivery(
        to=p["to"][0]["email"],
        subject=substitute(p["subject"] if _has_subject(p) else body["subject"]),
        html=substitute(content.get("text/html")),
        text=substitute(content.get("text/plain")),
        headers={**(body.get("headers") or {}), **(p.get("headers") or {})},
        custom_args={**(body.get("custom_args") or {}), **(p.get("custom_args") or {})},
        categories=list(body.get("categories") or []),
        send_at=p.get("send_at", body.get("send_at")),
        asm_group_id=(body.get("asm") or {}).get("group_id"),
        x_message_id=x_message_id,
        sg_message_id=sg_message_id,
        batch_id=body.get("batch_id"),
    )


def _write_events(path: Path, deliveries: list[Delivery]) -> None:
    """One "processed" event per delivery, as the Event Webhook posts them; replaced whole, never half-written."""
    lines = []
    for d in deliveries:
        event = {"email": d.to, "timestamp": int(time.time()), "event": "processed",
                 "sg_event_id": secrets.token_urlsafe(16), "sg_message_id": d.sg_message_id,
                 "category": d.categories}
        message_id = next((v for k, v in d.headers.items() if k.lower() == "message-id"), None)
        if message_id is not None:
            event["smtp-id"] = message_id
        if d.asm_group_id is not None:
            event["asm_group_id"] = d.asm_group_id
        # SendGrid delivers custom args as top-level keys; they never override the event's own fields.
        lines.append(json.dumps({**d.custom_args, **event}))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)

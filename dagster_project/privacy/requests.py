"""Privacy requests as they arrive: landing `privacy/*.jsonl`, one request per line (the CLI writes the
same lines), docs/design/privacy.md, section 3.1:

    {"request_id": "req-2026-0042", "type": "erase", "email": "ann@example.com", "user_id": "u_17",
     "received_at": "2026-11-30T09:15:00+00:00"}

type is erase or access; at least one of email and user_id. A line that is not a usable request is
rejected with a reason that names the field and never repeats its value (it may be an address); one bad
line never stops the lines after it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_project.addresses import address_problem, normalized_address
from dagster_project.ingest.reader import ReadLimits, read_jsonl

TYPES = ("erase", "access")
FIELDS = ("request_id", "type", "email", "user_id", "received_at")
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
MAX_USER_ID = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CLOCK_SKEW = timedelta(minutes=5)
LIMITS = ReadLimits(max_line_bytes=64 << 10, max_depth=4)  # a request is a few hundred bytes


@dataclass(frozen=True)
class PrivacyRequest:
    request_id: str
    type: str
    email: str | None  # normalized
    user_id: str | None
    received_at: datetime  # naive UTC
    source_file: str
    source_line: int
    content_sha256: str  # of the request's fields, canonical: the same request sent twice is one request

    def identifiers(self) -> list[tuple[str, str]]:
        return [(kind, value) for kind, value in (("email", self.email), ("user_id", self.user_id)) if value]


@dataclass(frozen=True)
class Rejection:
    source_file: str
    source_line: int
    line_sha256: str
    reason: str


def read_requests(path: Path, relative: str, now: datetime) -> tuple[list[PrivacyRequest], list[Rejection]]:
    """Every line of one landing file, as a request or a rejection. `now` is naive UTC."""
    accepted, rejected = [], []
    for raw in read_jsonl(path, LIMITS):
        text = raw.text if isinstance(raw.text, bytes) else raw.text.encode("utf-8", "replace")
        digest = hashlib.sha256(text).hexdigest()
        problem, request = raw.problem, None
        if problem is None:
            request, problem = parse_request(raw.record, relative, raw.line, now)
        if problem:
            rejected.append(Rejection(relative, raw.line, digest, problem))
        else:
            accepted.append(request)
    return accepted, rejected


def parse_request(record: dict, source_file: str, source_line: int,
                  now: datetime) -> tuple[PrivacyRequest | None, str | None]:
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        return None, f"unknown field(s) {', '.join(_name(k) for k in unknown)}; a request has {', '.join(FIELDS)}"
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        return None, ("request_id must be 1-64 letters, digits and . _ : - (starting with a letter or digit), "
                      "with no @: it is kept and audited in the clear")
    kind = record.get("type")
    if kind not in TYPES:
        return None, f"type must be erase or access ({request_id})"
    email, user_id = record.get("email"), record.get("user_id")
    if email is None and user_id is None:
        return None, f"needs an email or a user_id to find the person ({request_id})"
    if email is not None:
        if not isinstance(email, str):
            return None, f"email must be a string ({request_id})"
        problem = address_problem(email)
        if problem:
            return None, f"email is not an address: {problem} ({request_id})"
        email = normalized_address(email)
    if user_id is not None:
        if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID \
                or _CONTROL.search(user_id):
            return None, (f"user_id must be a non-empty string of at most {MAX_USER_ID} characters without control "
                          f"characters ({request_id})")
    received_at = _received_at(record.get("received_at"))
    if received_at is None:
        return None, f"received_at must be an ISO 8601 time with its UTC offset, e.g. 2026-11-30T09:15:00+00:00 " \
                     f"({request_id})"
    if received_at > now + CLOCK_SKEW:
        return None, f"received_at is in the future ({request_id}); check the sender's clock"
    content = "\x1f".join([request_id, kind, email or "", user_id or "", received_at.isoformat()])
    return PrivacyRequest(request_id, kind, email, user_id, received_at, source_file, source_line,
                          hashlib.sha256(content.encode()).hexdigest()), None


def _received_at(value) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _name(key: str) -> str:
    """A field name to quote in a reason, when it is a plain word (a key can hold anything, even an address)."""
    return repr(key) if re.fullmatch(r"[A-Za-z0-9_]{1,40}", key) else "(a name that is not a plain word)"

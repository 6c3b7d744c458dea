"""HubSpot contacts through the official client (hubspot-api-client): batch upsert keyed by a unique
contact property (email by default), at most 100 inputs per request.

Model columns become HubSpot properties named `mailroom_<column>` (which must exist in the portal);
timestamps are sent as ISO 8601 UTC, booleans as "true"/"false", NULL as "" (clears the property).

HubSpot answers a batch with 200/201 (all written), 207 Multi-Status (`errors` name the failing
inputs in context.ids; the others were written), or 400 for the whole batch (nothing written): the
batch is then split in halves until the refused inputs are alone, so every good row is written and
every bad row is rejected with HubSpot's message. 429 waits as HubSpot asks (Retry-After, else the
policy's window from the X-HubSpot-RateLimit-* headers; the DAILY limit stops the run), 5xx and
connection errors back off and retry. update_only reads the batch by the id property first and
leaves contacts HubSpot does not have alone.

The target's identity is the portal (HubSpot account) the token belongs to, asked once per run from
GET /account-info/v3/details, so a token for another portal starts a full sync there. A token HubSpot
does not let read its account details (403) is identified by a hash of the token instead: a new token
for the same portal then costs one full sync (upserts change nothing), never a missed one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal

import hubspot
import urllib3
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from dagster_project.settings import CRM_BATCH_LIMITS
from reverse_etl.sync.destinations.base import BatchResult, SyncRow
from reverse_etl.sync.errors import DestinationUnavailable, RetriesExhausted, SyncError, TransientFailure
from reverse_etl.sync.pacing import Pacer
from reverse_etl.sync.relation import Relation

MAX_INPUTS = CRM_BATCH_LIMITS["hubspot"]  # HubSpot's limit per batch request
PROPERTY_PREFIX = "mailroom_"
ACCOUNT_DETAILS_PATH = "/account-info/v3/details"
_TOKEN_HINT = ("set MAILROOM_HUBSPOT_ACCESS_TOKEN to a private app token with the crm.objects.contacts.write "
               "and read scopes")


class HubSpotCrm:
    name = "hubspot"
    max_batch = MAX_INPUTS

    def __init__(self, host: str, access_token: Callable[[], str], pacer: Pacer, id_property: str = "email",
                 id_column: str | None = None, timeout_seconds: float = 30.0):
        self.host = host.rstrip("/")
        self._access_token = access_token
        self.pacer = pacer
        self.id_property = id_property
        # The model column holding the id property's value: email for email, else the column whose
        # property name it is (mailroom_customer_id -> customer_id).
        self.id_column = id_column or (id_property[len(PROPERTY_PREFIX):] if id_property.startswith(PROPERTY_PREFIX)
                                       else id_property)
        self.timeout_seconds = timeout_seconds
        self._batch_api = None
        self._identity: str | None = None
        self.columns: tuple[str, ...] = ()

    def identity(self) -> str:
        """`hubspot:portal:<portal id>`, or `hubspot:token:<hash>` when the token may not read it."""
        if self._identity is None:
            token = self._token()
            try:
                status, payload = self.pacer.call(lambda: self._account_details(token), "HubSpot account details")
            except RetriesExhausted as error:
                raise DestinationUnavailable(
                    f"cannot tell which HubSpot portal the token belongs to: {error}") from error
            self._identity = _portal_identity(status, payload, token)
        return self._identity

    def rows_held(self) -> None:
        return None  # counting a portal's contacts is a search per run; a new portal is a new identity anyway

    def prepare(self, relation: Relation) -> None:
        names = tuple(c.name for c in relation.columns)
        if self.id_column not in names:
            raise SyncError(f"HubSpot contacts are keyed by the property {self.id_property!r}, read from the model "
                            f"column {self.id_column!r}, which {relation.name} does not have; set "
                            "MAILROOM_HUBSPOT_ID_PROPERTY to a unique property the model holds")
        self.columns = names
        token = self._token()
        # No retries inside urllib3: the Pacer retries, with the rate limit and backoff in view.
        client = hubspot.Client.create(access_token=token, host=self.host, retry=Retry(total=0, redirect=0))
        self._batch_api = client.crm.contacts.batch_api

    def properties(self, row: SyncRow) -> dict[str, str]:
        return {PROPERTY_PREFIX + name: _property_value(value) for name, value in row.values.items()
                if name != self.id_column or self.id_property.startswith(PROPERTY_PREFIX)}

    def existing(self, rows: list[SyncRow]) -> set[str]:
        ids = {}
        for row in rows:
            if _id(row, self.id_column):
                ids.setdefault(_id(row, self.id_column).lower(), []).append(row.key)
        if not ids:
            return set()
        body = BatchReadInputSimplePublicObjectId(
            id_property=self.id_property, properties=[self.id_property],
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties_with_history=[])
        status, payload = self.pacer.call(lambda: self._request(self._batch_api.read_with_http_info, body),
                                          f"HubSpot batch read of {len(ids)} contacts")
        if status >= 400:
            raise DestinationUnavailable(f"HubSpot refused a batch read by {self.id_property} ({status}): "
                                         f"{_message(payload)}")
        missing = set()
        for error in payload.get("errors") or []:
            missing |= {str(i).lower() for i in (error.get("context") or {}).get("ids") or []}
        return {key for value, keys in ids.items() if value not in missing for key in keys}

    def write(self, rows: list[SyncRow], mode: str) -> BatchResult:
        result = BatchResult()
        sendable = []
        for row in rows:
            if not _id(row, self.id_column):
                result.rejected[row.key] = (f"no {self.id_column} to key the HubSpot contact by "
                                            f"(idProperty {self.id_property})")
            else:
                sendable.append(row)
        # An id may appear once per request: repeats (two customers sharing an email) go in a later request.
        while sendable:
            request, later, seen = [], [], set()
            for row in sendable:
                value = _id(row, self.id_column).lower()
                (later if value in seen else request).append(row)
                seen.add(value)
            for start in range(0, len(request), MAX_INPUTS):
                result.merge(self._upsert(request[start:start + MAX_INPUTS]))
            sendable = later
        return result

    def _upsert(self, rows: Sequence[SyncRow]) -> BatchResult:
        body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            SimplePublicObjectBatchInputUpsert(id_property=self.id_property, id=_id(row, self.id_column),
                                               properties=self.properties(row)) for row in rows])
        status, payload = self.pacer.call(lambda: self._request(self._batch_api.upsert_with_http_info, body),
                                          f"HubSpot batch upsert of {len(rows)} contacts")
        if status in (200, 201):
            return BatchResult(acknowledged={row.key for row in rows})
        if status == 207:
            by_id = {}
            for row in rows:
                by_id.setdefault(_id(row, self.id_column).lower(), []).append(row.key)
            rejected = {}
            for error in payload.get("errors") or []:
                for value in (error.get("context") or {}).get("ids") or []:
                    for key in by_id.get(str(value).lower(), []):
                        rejected[key] = _error_reason(status, error)
            if rejected:
                return BatchResult(acknowledged={row.key for row in rows} - set(rejected), rejected=rejected)
        # The whole batch was refused (400, or errors we cannot place): isolate the rows it was refused for.
        if len(rows) == 1:
            return BatchResult(rejected={rows[0].key: _error_reason(status, payload)})
        middle = len(rows) // 2
        result = self._upsert(rows[:middle])
        result.merge(self._upsert(rows[middle:]))
        return result

    def _token(self) -> str:
        token = self._access_token()
        if not token:
            raise DestinationUnavailable(f"no HubSpot access token: {_TOKEN_HINT}")
        return token

    def _request(self, call, body) -> tuple[int, dict]:
        """(status, parsed body) of a 2xx or a refusal of the data; raises for everything else."""
        try:
            response = call(body, _preload_content=False, _request_timeout=self.timeout_seconds)
            return response.status, _json(response.data)
        except ApiException as error:
            status, payload = error.status or 0, _json(error.body)
            _raise_unless_answer(status, error.headers, payload, error.reason)
            return status, payload
        except (Urllib3Error, OSError) as error:
            raise TransientFailure(f"HubSpot at {self.host} unreachable: {error!r}") from error

    def _account_details(self, token: str) -> tuple[int, dict]:
        """(status, parsed body) of GET /account-info/v3/details: 200, or 403 when the token may not
        read it; raises for everything else, as _request does."""
        try:
            response = urllib3.request("GET", self.host + ACCOUNT_DETAILS_PATH, timeout=self.timeout_seconds,
                                       retries=False, headers={"Authorization": f"Bearer {token}",
                                                               "Accept": "application/json"})
        except (Urllib3Error, OSError) as error:
            raise TransientFailure(f"HubSpot at {self.host} unreachable: {error!r}") from error
        payload = _json(response.data)
        if response.status in (200, 403):
            return response.status, payload
        _raise_unless_answer(response.status, response.headers, payload, response.reason)
        raise DestinationUnavailable(f"HubSpot answered {response.status} to GET {ACCOUNT_DETAILS_PATH}: "
                                     f"{_message(payload)}; check MAILROOM_HUBSPOT_HOST")

    def close(self) -> None:
        self._batch_api = None


def _raise_unless_answer(status: int, headers, payload: dict, reason) -> None:
    """Raise what the engine acts on (wait, retry, stop the run) for a status that is not an answer
    about the data itself; return for 2xx and for refusals of the data (400, 404, 409, ...)."""
    if status == 429:
        if payload.get("policyName") == "DAILY":
            raise DestinationUnavailable(f"HubSpot's daily API limit is used up ({_message(payload)}); "
                                         "the next run after it resets sends the remaining rows")
        raise TransientFailure(f"HubSpot rate limit (429 {payload.get('policyName') or ''}): {_message(payload)}",
                               retry_after=retry_after(headers, payload))
    if status in (401, 403):
        raise DestinationUnavailable(f"HubSpot refused the access token ({status} {payload.get('category') or ''}: "
                                     f"{_message(payload)}); {_TOKEN_HINT}")
    if status == 0 or status >= 500 or status == 408:
        raise TransientFailure(f"HubSpot {status or 'connection'} error: {_message(payload) or reason}",
                               retry_after=retry_after(headers, payload))


def _portal_identity(status: int, payload: dict, token: str) -> str:
    portal = payload.get("portalId")
    if status == 200 and isinstance(portal, int) and not isinstance(portal, bool) and portal > 0:
        return f"hubspot:portal:{portal}"
    if status == 403:
        # A plain hash is enough: a private app token is a long random secret, so its hash cannot be
        # inverted by guessing, and keeping it keyless leaves the sync state independent of other secrets.
        return "hubspot:token:" + hashlib.sha256(token.encode()).hexdigest()[:24]
    raise DestinationUnavailable(f"HubSpot's account details name no portal (portalId {str(portal)[:40]!r}); "
                                 "check MAILROOM_HUBSPOT_HOST")


def retry_after(headers, payload: dict) -> float | None:
    """Seconds HubSpot wants us to wait: Retry-After when sent; else, when the window's allowance is used
    up, the window (X-HubSpot-RateLimit-Interval-Milliseconds, or one second for the SECONDLY policy)."""
    headers = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    value = headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if payload.get("policyName") == "SECONDLY" or headers.get("x-hubspot-ratelimit-secondly-remaining") == "0":
        return 1.0
    interval = headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
    if interval.isdigit() and headers.get("x-hubspot-ratelimit-remaining", "0") == "0":
        return int(interval) / 1000
    return None


def _id(row: SyncRow, column: str) -> str:
    value = row.values.get(column)
    return "" if value is None else str(value).strip()


def _property_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        text = f"{value:.6f}".rstrip("0").rstrip(".")  # as the row hash rounds it; never 1e-06
        return "0" if text == "-0" else text
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _json(data) -> dict:
    try:
        parsed = json.loads(data.decode() if isinstance(data, bytes) else data or "{}")
    except (ValueError, UnicodeDecodeError):
        return {"message": str(data)[:300]}
    return parsed if isinstance(parsed, dict) else {}


def _message(payload: dict) -> str:
    return str(payload.get("message") or "")[:500]


def _error_reason(status: int, error: dict) -> str:
    details = "; ".join(f"{d.get('code') or ''} {d.get('message') or ''}".strip()
                        for d in error.get("errors") or [] if isinstance(d, dict))
    reason = f"hubspot {status} {error.get('category') or ''}: {_message(error)}"
    return (reason + (f" ({details})" if details else ""))[:1000]

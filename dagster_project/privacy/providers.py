"""Erasing a person where Mailroom sent them: the CRM and the email provider (docs/design/privacy.md,
section 3.3 step 3, and the verified wire formats in section 2).

    erasers = configured_erasers(settings)   # the sync's and the sender's settings, from the environment
    counts = erasers["hubspot"].erase(emails, crm_contact_ids, customer_ids)   # None: not configured

One eraser per step, configured the way the CRM sync and the sender are:
crm_database  the sync's CRM table (MAILROOM_CRM_DESTINATION=database, MAILROOM_CRM_DATABASE_URL and
              _TABLE): DELETE the rows whose customer_id (the sync's key) is the person's, or whose email
              normalizes to one of their addresses. A table or SQLite file that does not exist holds nobody.
hubspot       (MAILROOM_CRM_DESTINATION=hubspot, MAILROOM_HUBSPOT_HOST, MAILROOM_HUBSPOT_ACCESS_TOKEN) a GDPR
              delete per contact id, then per address (idProperty email). A 404 for an id means it is gone
              already; an address with no contact is blocklisted by HubSpot (2xx). A portal keyed by another
              property (MAILROOM_HUBSPOT_ID_PROPERTY) is read by it first, and the contacts found deleted by id.
sendgrid      (sendgrid in MAILROOM_DESTINATIONS, MAILROOM_SENDGRID_HOST and _API_KEY) every address on the
              global suppression list, then the marketing contacts found by address deleted; the delete is a
              job, so the search is repeated (a few times, a short wait apart) until it finds nothing.

Every eraser is idempotent: run again, it succeeds and deletes nothing. A failure raises ProviderEraseError,
which says whether the same call may succeed later (429, 5xx, a lost connection, a delete job still running)
or someone must act first (a refused token or key, a table that does not fit: the message names the
setting). No message holds an identifier: the person's are masked, and so is anything in a provider's
answer that looks like an address. Retries and their backoff are the step runner's (one attempt per call).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import time
import urllib.error
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import hubspot
import sqlalchemy as sa
from hubspot.crm.contacts import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    PublicGdprDeleteInput,
    SimplePublicObjectId,
)
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sqlalchemy import exc
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from dagster_project.addresses import normalized_address
from dagster_project.quality.masking import mask_value
from dagster_project.redaction import redact_url
from dagster_project.settings import (
    ActivationSettings,
    Settings,
    SyncSettings,
    crm_database_password,
    hubspot_access_token,
    load_activation_settings,
    load_sync_settings,
    sendgrid_api_key,
)
from reverse_etl.destinations.sendgrid import _retry_after as sendgrid_retry_after
from reverse_etl.destinations.sendgrid import _summary as sendgrid_summary
from reverse_etl.sync.destinations.hubspot import PROPERTY_PREFIX
from reverse_etl.sync.destinations.hubspot import retry_after as hubspot_retry_after

MAX_PER_REQUEST = 100  # HubSpot's batch read and SendGrid's contact search take at most 100
_ADDRESS_LIKE = re.compile(r"[^\s@\"'<>(),;:\[\]{}]+@[^\s@\"'<>(),;:\[\]{}]+")


class ProviderEraseError(RuntimeError):
    """An erasure step that did not finish. `retryable`: the same call may succeed later; otherwise someone
    must act first, as the message says. `retry_after`: seconds the provider asked to wait, when it did."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Eraser(Protocol):
    name: str

    def erase(self, emails: Sequence[str], crm_contact_ids: Sequence[str],
              customer_ids: Sequence[str]) -> dict[str, int]: ...


# --- the database CRM --------------------------------------------------------------------------------

class DatabaseCrmEraser:
    name = "crm_database"
    customer_column, email_column = "customer_id", "email"  # the sync's key (reverse_etl.sync.run) and address

    def __init__(self, url: str, table: str, password: Callable[[], str] | None = None):
        self.url = url
        self.table = table
        self._password = password  # read when connecting, for a URL given without its password

    def erase(self, emails: Sequence[str], crm_contact_ids: Sequence[str],
              customer_ids: Sequence[str]) -> dict[str, int]:
        addresses, customers = _addresses(emails), _ids(customer_ids)
        identifiers = [*addresses, *customers]
        if not identifiers:
            return {"deleted": 0}
        url = self._parsed_url()
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
                and not Path(url.database).exists():
            return {"deleted": 0}  # never created: the sync has not written to it yet
        try:
            engine = _engine(url, self._password)
            try:
                with engine.begin() as conn:
                    return {"deleted": self._delete(conn, addresses, customers)}
            finally:
                engine.dispose()
        except exc.OperationalError as error:
            reason = _scrubbed(str(error.orig), identifiers)
            if any(word in reason.lower() for word in ("authentication", "password", "does not exist")):
                raise ProviderEraseError(f"the CRM database {redact_url(self.url)} refused the connection: {reason}; "
                                         "check MAILROOM_CRM_DATABASE_URL", retryable=False) from None
            raise ProviderEraseError(f"the CRM database {redact_url(self.url)} is unavailable: {reason}; "
                                     "retried later", retryable=True) from None
        except exc.ArgumentError as error:  # no driver for the URL's backend
            raise ProviderEraseError(f"the CRM database URL {redact_url(self.url)} cannot be used: "
                                     f"{_scrubbed(str(error), identifiers)}; check MAILROOM_CRM_DATABASE_URL",
                                     retryable=False) from None
        except exc.DBAPIError as error:
            raise ProviderEraseError(
                f"the CRM table {self.table} in {redact_url(self.url)} refused the delete: "
                f"{type(error.orig).__name__}: {_scrubbed(str(error.orig), identifiers)}; check "
                "MAILROOM_CRM_DATABASE_TABLE", retryable=False) from None

    def _delete(self, conn: sa.Connection, addresses: list[str], customers: list[str]) -> int:
        schema, _, name = self.table.rpartition(".")
        if not sa.inspect(conn).has_table(name, schema=schema or None):
            return 0
        table = sa.Table(name, sa.MetaData(schema=schema or None), autoload_with=conn)
        if self.customer_column not in table.c and self.email_column not in table.c:
            raise ProviderEraseError(
                f"the CRM table {self.table} in {redact_url(self.url)} has neither {self.customer_column} nor "
                f"{self.email_column}, so it cannot be the sync's contacts table; check MAILROOM_CRM_DATABASE_TABLE",
                retryable=False)
        matches = []
        if customers and self.customer_column in table.c:
            matches.append(table.c[self.customer_column].in_(customers))
        if addresses and self.email_column in table.c:
            # lower() folds other letters than ASCII (on PostgreSQL), so it finds a superset; the spellings
            # that normalize to one of the addresses (addresses.normalized_address) are the ones deleted.
            email = table.c[self.email_column]
            candidates = sorted(set(addresses) | {a.lower() for a in addresses})
            stored = conn.execute(sa.select(email).where(sa.func.lower(sa.func.trim(email)).in_(candidates))
                                  .distinct()).scalars()
            spellings = sorted({s for s in stored if s is not None and normalized_address(s) in set(addresses)})
            if spellings:
                matches.append(email.in_(spellings))
        if not matches:
            return 0
        return int(conn.execute(table.delete().where(sa.or_(*matches))).rowcount or 0)

    def _parsed_url(self) -> sa.URL:
        try:
            return sa.engine.make_url(self.url)
        except (exc.ArgumentError, ValueError):
            raise ProviderEraseError(f"the CRM database URL {redact_url(self.url)!r} is not a database URL "
                                     "SQLAlchemy understands; check MAILROOM_CRM_DATABASE_URL",
                                     retryable=False) from None


def _engine(url: sa.URL, password: Callable[[], str] | None) -> sa.Engine:
    if url.password is None and password is not None and (secret := password()):
        url = url.set(password=secret)
    if url.drivername.startswith("postgresql") and "+" not in url.drivername:
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, as the sync connects
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


# --- HubSpot -------------------------------------------------------------------------------------------

_HUBSPOT_TOKEN_HINT = ("set MAILROOM_HUBSPOT_ACCESS_TOKEN to a private app token with the crm.objects.contacts.write "
                       "and read scopes (and check MAILROOM_HUBSPOT_HOST)")


class HubSpotEraser:
    name = "hubspot"

    def __init__(self, host: str, access_token: Callable[[], str], id_property: str = "email",
                 timeout_seconds: float = 30.0):
        self.host = host.rstrip("/")
        self._access_token = access_token
        self.id_property = id_property
        self.timeout_seconds = timeout_seconds

    def erase(self, emails: Sequence[str], crm_contact_ids: Sequence[str],
              customer_ids: Sequence[str]) -> dict[str, int]:
        addresses, contact_ids, customers = _addresses(emails), _ids(crm_contact_ids), _ids(customer_ids)
        identifiers = [*addresses, *contact_ids, *customers]
        counts = {"deleted": 0, "already_gone": 0, "addresses": 0}  # addresses: deleted or blocklisted by email
        if not addresses and not contact_ids and not customers:
            return counts
        token = self._access_token()
        if not token:
            raise ProviderEraseError(f"no HubSpot access token: {_HUBSPOT_TOKEN_HINT}", retryable=False)
        # No retries inside urllib3: the step runner retries, with its backoff.
        contacts = hubspot.Client.create(access_token=token, host=self.host,
                                         retry=Retry(total=0, redirect=0)).crm.contacts
        found = self._ids_by_property(contacts, {"customer_id": customers, "email": addresses}, identifiers)
        for contact_id in sorted(set(contact_ids) | found):
            status = self._request(contacts.basic_api.purge_with_http_info, PublicGdprDeleteInput(object_id=contact_id),
                                   f"the GDPR delete of contact {mask_value(contact_id)}", identifiers)
            counts["already_gone" if status == 404 else "deleted"] += 1
        for address in addresses:
            self._request(contacts.basic_api.purge_with_http_info,
                          PublicGdprDeleteInput(object_id=address, id_property="email"),
                          f"the GDPR delete of {mask_value(address)}", identifiers)
            counts["addresses"] += 1  # a 404 too: the address is not a contact
        return counts

    def _ids_by_property(self, contacts, values: dict[str, list[str]], identifiers: list[str]) -> set[str]:
        """The ids of the contacts whose id property (a portal not keyed by email) holds the person's value."""
        column = self.id_property.removeprefix(PROPERTY_PREFIX)
        if self.id_property == "email" or not values.get(column):
            return set()
        found: set[str] = set()
        for chunk in _chunks(values[column], MAX_PER_REQUEST):
            body = BatchReadInputSimplePublicObjectId(
                id_property=self.id_property, properties=[self.id_property],
                inputs=[SimplePublicObjectId(id=value) for value in chunk], properties_with_history=[])
            self._request(contacts.batch_api.read_with_http_info, body,
                          f"the read of {len(chunk)} contact(s) by {self.id_property}", identifiers, found)
        return found

    def _request(self, call, body, what: str, identifiers: list[str], found: set[str] | None = None) -> int:
        """The status of a 2xx or a 404; raises ProviderEraseError for anything else. `found` collects the
        ids of the contacts a batch read answers with."""
        try:
            response = call(body, _preload_content=False, _request_timeout=self.timeout_seconds)
        except ApiException as error:
            if error.status == 404:
                return 404
            raise _hubspot_failure(error.status or 0, error.headers, _json(error.body), what,
                                   identifiers) from None
        except (Urllib3Error, OSError) as error:
            raise ProviderEraseError(f"HubSpot at {self.host} did not answer {what}: "
                                     f"{_scrubbed(repr(error), identifiers)}; retried later", retryable=True) from None
        if found is not None:
            found |= {str(r["id"]) for r in _json(response.data).get("results") or [] if r.get("id")}
        return response.status


def _hubspot_failure(status: int, headers, payload: dict, what: str, identifiers: list[str]) -> ProviderEraseError:
    said = f"{payload.get('category') or ''}: {_scrubbed(str(payload.get('message') or ''), identifiers)}"
    if status == 429:
        return ProviderEraseError(f"HubSpot's rate limit (429 {payload.get('policyName') or ''}) stopped {what}: "
                                  f"{said}; retried later", retryable=True,
                                  retry_after=hubspot_retry_after(headers, payload))
    if status in (401, 403):
        return ProviderEraseError(f"HubSpot refused the access token for {what} ({status} {said}); "
                                  f"{_HUBSPOT_TOKEN_HINT}", retryable=False)
    if status in (0, 408) or status >= 500:
        return ProviderEraseError(f"HubSpot failed {what} ({status or 'connection'} {said}); retried later",
                                  retryable=True, retry_after=hubspot_retry_after(headers, payload))
    return ProviderEraseError(f"HubSpot refused {what} ({status} {said})", retryable=False)


# --- SendGrid ------------------------------------------------------------------------------------------

_SENDGRID_KEY_HINT = ("set MAILROOM_SENDGRID_API_KEY to a key with the Marketing (contacts) and Suppressions "
                      "permissions (and check MAILROOM_SENDGRID_HOST)")


class _Invalid(Exception):
    """SendGrid refused a request for its addresses (400)."""


class SendGridEraser:
    name = "sendgrid"

    def __init__(self, host: str, api_key: Callable[[], str], timeout_seconds: float = 30.0,
                 confirm_searches: int = 5, confirm_wait_seconds: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.host = host.rstrip("/")
        self._api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.confirm_searches = confirm_searches  # searches after a delete before "the job is still running"
        self.confirm_wait_seconds = confirm_wait_seconds
        self._sleep = sleep

    def erase(self, emails: Sequence[str], crm_contact_ids: Sequence[str],
              customer_ids: Sequence[str]) -> dict[str, int]:
        addresses = _addresses(emails)
        counts = {"suppressed": 0, "deleted": 0, "invalid": 0}  # invalid: addresses SendGrid refuses to hold
        if not addresses:
            return counts
        key = self._api_key()
        if not key:
            raise ProviderEraseError(f"no SendGrid API key: {_SENDGRID_KEY_HINT}", retryable=False)
        client = SendGridAPIClient(api_key=key, host=self.host).client
        invalid: set[str] = set()
        for chunk in _chunks(addresses, MAX_PER_REQUEST):
            suppressed, refused = _split_on_invalid(chunk, lambda part: self._call(
                f"suppress {len(part)} address(es) globally", addresses,
                client.asm.suppressions._("global").post, request_body={"recipient_emails": part}))
            counts["suppressed"] += sum(len(part) for part, _ in suppressed)
            invalid |= set(refused)
        # Search, delete what is found, and search again (the delete is a job) until nothing is found.
        deleted: set[str] = set()
        found, waits = self._contact_ids(client, addresses, invalid), 0
        while found:
            fresh = sorted(found - deleted)
            for chunk in _chunks(fresh, MAX_PER_REQUEST):
                self._call(f"delete {len(chunk)} marketing contact(s)", addresses, client.marketing.contacts.delete,
                           query_params={"ids": ",".join(chunk)})
            deleted |= set(fresh)
            if waits == self.confirm_searches:
                raise ProviderEraseError(
                    f"SendGrid still lists {len(found)} marketing contact(s) after {waits} more search(es) "
                    f"{self.confirm_wait_seconds:g} s apart: the delete job is still running; retried later",
                    retryable=True)
            self._sleep(self.confirm_wait_seconds)
            found, waits = self._contact_ids(client, addresses, invalid), waits + 1
        counts["deleted"], counts["invalid"] = len(deleted), len(invalid)
        return counts

    def _contact_ids(self, client, addresses: list[str], invalid: set[str]) -> set[str]:
        """The ids of the marketing contacts with these addresses (SendGrid answers 404 when none has one);
        addresses SendGrid calls invalid are added to `invalid` and not searched again."""
        found: set[str] = set()
        for chunk in _chunks([a for a in addresses if a not in invalid], MAX_PER_REQUEST):
            answers, refused = _split_on_invalid(chunk, lambda part: self._call(
                f"search marketing contacts by {len(part)} address(es)", addresses,
                client.marketing.contacts.search.emails.post, request_body={"emails": part}))
            invalid |= set(refused)
            for _, (status, payload) in answers:
                if status == 404:
                    continue
                for answer in (payload.get("result") or {}).values():
                    contact = answer.get("contact") if isinstance(answer, dict) else None
                    if isinstance(contact, dict) and contact.get("id"):
                        found.add(str(contact["id"]))
        return found

    def _call(self, what: str, identifiers: Sequence[str], request, **kwargs) -> tuple[int, dict]:
        """(status, parsed body) of a 2xx or a 404; _Invalid for a 400; ProviderEraseError for anything else."""
        try:
            response = request(timeout=self.timeout_seconds, **kwargs)
        except http_errors.HTTPError as error:
            status = error.status_code
            if status == 404:
                return 404, {}
            if status == 400:
                raise _Invalid() from None
            said = _scrubbed(sendgrid_summary(error.body), identifiers)
            if status == 429 or status >= 500:
                raise ProviderEraseError(f"SendGrid could not {what} ({status}: {said}); retried later",
                                         retryable=True, retry_after=sendgrid_retry_after(error.headers)) from None
            if status in (401, 403):
                raise ProviderEraseError(f"SendGrid refused the API key to {what} ({status}: {said}); "
                                         f"{_SENDGRID_KEY_HINT}", retryable=False) from None
            raise ProviderEraseError(f"SendGrid refused to {what} ({status}: {said})", retryable=False) from None
        except (urllib.error.URLError, TimeoutError, http.client.HTTPException, OSError) as error:
            raise ProviderEraseError(f"SendGrid at {self.host} did not answer to {what}: "
                                     f"{_scrubbed(repr(error), identifiers)}; retried later", retryable=True) from None
        return response.status_code, _json(response.body)


def _split_on_invalid(addresses: list[str], call) -> tuple[list[tuple[list[str], object]], list[str]]:
    """call(part) for all `addresses`; when SendGrid refuses a part for an invalid address (400), each half
    alone, down to single addresses, which are left out: SendGrid holds no contact and sends no mail to an
    address it calls invalid. Returns ([(part, answer)], refused addresses)."""
    try:
        return [(addresses, call(addresses))], []
    except _Invalid:
        if len(addresses) == 1:
            return [], list(addresses)
    middle = len(addresses) // 2
    first, first_refused = _split_on_invalid(addresses[:middle], call)
    second, second_refused = _split_on_invalid(addresses[middle:], call)
    return first + second, first_refused + second_refused


# --- the registry --------------------------------------------------------------------------------------

def _crm_database(sync: SyncSettings, activation: ActivationSettings) -> Eraser | None:
    if sync.destination != "database":
        return None
    url = sync.database_url
    return DatabaseCrmEraser(url, sync.database_table, password=lambda: crm_database_password(url))


def _hubspot(sync: SyncSettings, activation: ActivationSettings) -> Eraser | None:
    if sync.destination != "hubspot":
        return None
    return HubSpotEraser(sync.hubspot_host, hubspot_access_token, id_property=sync.hubspot_id_property)


def _sendgrid(sync: SyncSettings, activation: ActivationSettings) -> Eraser | None:
    if "sendgrid" not in activation.destinations:
        return None
    return SendGridEraser(activation.sendgrid_host, sendgrid_api_key, timeout_seconds=activation.timeout_seconds)


# step -> the eraser the settings configure for it, or None (the step is then recorded as skipped)
ERASERS: dict[str, Callable[[SyncSettings, ActivationSettings], Eraser | None]] = {
    "crm_database": _crm_database,
    "hubspot": _hubspot,
    "sendgrid": _sendgrid,
}


def configured_erasers(settings: Settings, sync: SyncSettings | None = None,
                       activation: ActivationSettings | None = None) -> dict[str, Eraser | None]:
    """The eraser of every step in ERASERS (None: that destination is not configured), from the CRM sync's
    and the sender's settings, read from the environment when not given. The CRM's default SQLite file is
    the one in settings.data_dir, where the sync writes it (MAILROOM_DATA_DIR)."""
    environ = {**os.environ, "MAILROOM_DATA_DIR": str(settings.data_dir)}
    sync = sync if sync is not None else load_sync_settings(environ)
    if not sync.database_url:  # SyncSettings() built by hand: the default, as reverse_etl.sync.run has it
        sync = dataclasses.replace(sync, database_url=load_sync_settings(environ).database_url)
    activation = activation if activation is not None else load_activation_settings(environ)
    return {step: factory(sync, activation) for step, factory in ERASERS.items()}


# --- identifiers in and out of messages ----------------------------------------------------------------

def _addresses(emails: Iterable[str]) -> list[str]:
    return sorted({normalized_address(e) for e in emails if e and normalized_address(e)})


def _ids(values: Iterable) -> list[str]:
    return sorted({str(v).strip() for v in values if v is not None and str(v).strip()})


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[start:start + size] for start in range(0, len(values), size)]


def _scrubbed(text: str, identifiers: Iterable[str]) -> str:
    """`text` (a provider's answer, a database error) with the person's identifiers, and anything that looks
    like an address, masked."""
    for value in sorted(set(identifiers), key=len, reverse=True):
        if len(value) >= 3:
            text = re.sub(re.escape(value), mask_value(value), text, flags=re.IGNORECASE)
    return _ADDRESS_LIKE.sub(lambda match: mask_value(match.group()), text)[:500]


def _json(data) -> dict:
    try:
        parsed = json.loads(data.decode() if isinstance(data, bytes) else data or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}

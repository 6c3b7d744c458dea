"""SendGrid v3 Mail Send through the official client, up to 1,000 messages per request.

Every message of a request shares one content block whose text is a substitution tag; each
personalization fills the tags with its own rendered HTML and text, subject, headers and send_at.
custom_args carry ids only (message, campaign, variant): SendGrid returns them in every event,
which is how an unknown outcome is reconciled. A message too big for substitutions goes alone.

SendGrid accepts an internationalized address (non-ASCII) with 202 and then drops the message as
invalid (sendgrid/sendgrid-ruby#91, sendgrid/sendgrid-csharp#656), so such a message fails here,
with the reason, instead of vanishing there.

With cancel_margin set (MAILROOM_UNKNOWN_OUTCOME=cancel_and_resend), every request carries a batch
id created just before it (POST /v3/mail/batch) and send_at at least the margin ahead, so a run
recovering from a crash can cancel the batch (POST /v3/user/scheduled_sends) and send it again.
SendGrid cannot cancel later than 10 minutes before a batch's send_at.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from dagster_project.addresses import normalized_address
from reverse_etl.destinations.base import (
    BatchResult,
    DeliveryError,
    DestinationUnavailable,
    OutcomeUnknown,
    PayloadTooLarge,
    TransientFailure,
)
from reverse_etl.outgoing import OutgoingMessage

HTML_TAG, TEXT_TAG = "%mailroom_html%", "%mailroom_text%"
SUBSTITUTIONS_LIMIT_BYTES = 10_000  # SendGrid's documented limit has been 10,000 (older) to 50,000 bytes
MAX_SCHEDULE_AHEAD = timedelta(hours=72)
CANCEL_DEADLINE = timedelta(minutes=10)  # SendGrid cannot cancel a batch later than this before its send_at
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\b")


class SendGridDestination:
    name = "sendgrid"
    schedules_ahead = MAX_SCHEDULE_AHEAD - timedelta(minutes=5)  # margin for clock skew

    def __init__(self, host: str, api_key: Callable[[], str], from_email: str, from_name: str,
                 unsubscribe_group_id: int | None = None, batch_size: int = 1000, timeout_seconds: float = 30.0,
                 cancel_margin: timedelta | None = None):
        self.host = host
        self._api_key = api_key
        self.from_email = from_email
        self.from_name = from_name
        self.unsubscribe_group_id = unsubscribe_group_id
        self.max_batch = batch_size
        self.timeout_seconds = timeout_seconds
        self.cancellable = cancel_margin is not None
        self.minimum_lead = cancel_margin or timedelta(0)
        self._client: SendGridAPIClient | None = None
        self.requests = 0

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> BatchResult:
        result = BatchResult()
        sendable = []
        for message in batch:
            problem = _problem(message)
            if problem:
                result.unsendable[message.message_id] = problem
            else:
                sendable.append(message)
        for messages in _requests(sendable):
            try:
                self._post(messages, now, result, batch_id)
            except DeliveryError as error:
                error.partial = result
                if not error.outcome_known:  # only this request may have gone out; the later ones never did
                    error.unknown_ids = {m.message_id for m in messages}
                raise
        return result

    def split_request(self, batch: Sequence[OutgoingMessage]) -> tuple[list[OutgoingMessage], list[OutgoingMessage]]:
        """What the first request of this batch carries (with the messages that cannot go at all, which
        take no request), and the rest: a cancellable hand-over is one request, in one provider batch."""
        requests = _requests([m for m in batch if not _problem(m)])
        first = {m.message_id for m in requests[0]} if requests else set()
        first |= {m.message_id for m in batch if _problem(m)}
        return [m for m in batch if m.message_id in first], [m for m in batch if m.message_id not in first]

    def new_batch(self) -> str:
        """A new batch id (POST /v3/mail/batch) for the next request."""
        response = self._call("create a batch id", lambda client: client.mail.batch.post(timeout=self.timeout_seconds))
        batch_id = json.loads(response.body or b"{}").get("batch_id")
        if not batch_id:
            raise TransientFailure(f"SendGrid answered POST /v3/mail/batch without a batch_id: {response.body!r}"[:500])
        return batch_id

    def cancel_batch(self, batch_id: str) -> bool:
        """Cancel a scheduled batch: SendGrid discards its messages at their send_at. True when SendGrid
        took the cancellation (also when the batch was cancelled before)."""
        body = {"batch_id": batch_id, "status": "cancel"}
        try:
            self._call("cancel a batch", lambda client: client.user.scheduled_sends.post(
                request_body=body, timeout=self.timeout_seconds))
            return True
        except DeliveryError:
            pass
        try:  # the batch already has a status (paused, or a cancellation an interrupted run asked for): update it
            self._call("cancel a batch", lambda client: client.user.scheduled_sends._(batch_id).patch(
                request_body={"status": "cancel"}, timeout=self.timeout_seconds))
            return True
        except DeliveryError:
            return False

    def _call(self, what: str, request):
        try:
            return request(self._sendgrid().client)
        except http_errors.HTTPError as error:
            status, summary = error.status_code, _summary(error.body)
            if status in (401, 403):
                raise DestinationUnavailable(f"SendGrid refused the API key ({status}: {summary}); set "
                                             "MAILROOM_SENDGRID_API_KEY to a key with Mail Send permission") from error
            raise TransientFailure(f"SendGrid could not {what} ({status}): {summary}",
                                   retry_after=_retry_after(error.headers)) from error
        except (urllib.error.URLError, TimeoutError, http.client.HTTPException, OSError) as error:
            raise TransientFailure(f"SendGrid at {self.host} did not answer to {what}: {error!r}") from error

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> None:
        return None  # answered by the provider's events (raw.esp_events), see reverse_etl.reconcile

    def close(self) -> None:
        self._client = None

    def request_body(self, messages: Sequence[OutgoingMessage], now: datetime, batch_id: str | None = None) -> dict:
        alone = len(messages) == 1 and _substitutions_size(messages[0]) > SUBSTITUTIONS_LIMIT_BYTES
        body = {
            "from": {"email": self.from_email, "name": self.from_name},
            "personalizations": [self._personalization(m, now, substitute=not alone) for m in messages],
            "content": [
                {"type": "text/plain", "value": messages[0].text if alone else TEXT_TAG},
                {"type": "text/html", "value": messages[0].html if alone else HTML_TAG},
            ],
            "categories": sorted({m.campaign_id for m in messages})[:10],
        }
        if self.unsubscribe_group_id is not None:
            body["asm"] = {"group_id": self.unsubscribe_group_id}
        if batch_id is not None:
            body["batch_id"] = batch_id
        return body

    def _personalization(self, message: OutgoingMessage, now: datetime, substitute: bool) -> dict:
        personalization = {
            "to": [{"email": message.to_email}],
            "subject": message.subject,
            "headers": dict(message.headers),
            "custom_args": message.tracking_args,
        }
        if substitute:
            personalization["substitutions"] = {HTML_TAG: message.html, TEXT_TAG: message.text}
        if message.deliver_at and message.deliver_at > now + timedelta(minutes=1):
            personalization["send_at"] = int(message.deliver_at.replace(tzinfo=timezone.utc).timestamp())
        return personalization

    def _post(self, messages: Sequence[OutgoingMessage], now: datetime, result: BatchResult,
              batch_id: str | None) -> None:
        body = self.request_body(messages, now, batch_id)
        self.requests += 1
        try:
            response = self._sendgrid().client.mail.send.post(request_body=body, timeout=self.timeout_seconds)
        except http_errors.HTTPError as error:
            self._raise_or_reject(error, messages, result)
            return
        except urllib.error.URLError as error:
            # urllib wraps failures while connecting or sending: the request never arrived whole.
            raise TransientFailure(f"SendGrid at {self.host} unreachable: {error.reason}") from error
        except (TimeoutError, http.client.HTTPException, ConnectionError, OSError) as error:
            raise OutcomeUnknown(f"no answer from SendGrid after the request was sent: {error!r}") from error
        provider_id = _header(response.headers, "X-Message-Id") or f"status-{response.status_code}"
        for message in messages:
            result.accepted[message.message_id] = provider_id

    def _raise_or_reject(self, error, messages: Sequence[OutgoingMessage], result: BatchResult) -> None:
        status, errors, summary = error.status_code, _errors(error.body), _summary(error.body)
        if status == 429:
            raise TransientFailure(f"SendGrid rate limit (429): {summary}", retry_after=_retry_after(error.headers))
        if status >= 500:
            raise TransientFailure(f"SendGrid {status}: {summary}", retry_after=_retry_after(error.headers))
        if status == 413:
            raise PayloadTooLarge(f"SendGrid 413 for {len(messages)} messages: {summary}")
        if status in (401, 403):
            raise DestinationUnavailable(
                f"SendGrid refused the API key ({status}: {summary}); set MAILROOM_SENDGRID_API_KEY to a key with "
                "Mail Send permission"
            )
        per_message = {}
        for item in errors:
            match = _PERSONALIZATION_FIELD.match(str(item.get("field") or ""))
            if match and int(match.group(1)) < len(messages):
                message = messages[int(match.group(1))]
                per_message[message.message_id] = f"sendgrid {status} {item.get('field')}: {item.get('message')}"[:500]
        if status == 400 and per_message and len(per_message) == len(errors):
            result.rejected.update(per_message)  # the others were refused only because of these
            return
        raise DestinationUnavailable(f"SendGrid refused the request ({status}): {summary}")

    def _sendgrid(self) -> SendGridAPIClient:
        if self._client is None:
            self._client = SendGridAPIClient(api_key=self._api_key(), host=self.host)
        return self._client


def _requests(messages: Sequence[OutgoingMessage]) -> list[list[OutgoingMessage]]:
    """The requests a batch takes: one shared by every message whose content fits in substitutions,
    and one per message too big for them. An address may appear once per request (SendGrid compares
    them case-insensitively): a second message to it waits for the next request."""
    shared, alone, seen = [], [], set()
    for message in messages:
        if _substitutions_size(message) > SUBSTITUTIONS_LIMIT_BYTES:
            alone.append([message])
            continue
        address = normalized_address(message.to_email)
        if address not in seen:
            seen.add(address)
            shared.append(message)
    return [request for request in (shared, *alone) if request]


def _problem(message: OutgoingMessage) -> tuple[str, str] | None:
    """(reason, error) when SendGrid cannot carry the message at all."""
    if message.needs_smtputf8:
        return ("smtputf8_unsupported", "the address is internationalized (non-ASCII), which SendGrid does not "
                "deliver: it accepts the request and drops the message as invalid")
    try:
        for text in (message.subject, message.html, message.text, *message.headers.values()):
            str(text).encode("utf-8")
    except UnicodeError as error:  # a lone surrogate from a broken template: not valid JSON text for SendGrid
        return ("compose_failed", f"the message cannot be encoded as UTF-8: {error}"[:500])
    return None


def _substitutions_size(message: OutgoingMessage) -> int:
    return len(message.html.encode()) + len(message.text.encode()) + len(HTML_TAG) + len(TEXT_TAG)


def _summary(body) -> str:
    errors = _errors(body)
    return "; ".join(f"{e.get('field') or '-'}: {e.get('message')}" for e in errors)[:500] or str(body)[:500]


def _errors(body) -> list[dict]:
    try:
        parsed = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
    except (ValueError, UnicodeDecodeError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _header(headers, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name) if hasattr(headers, "get") else None
    return str(value) if value else None


def _retry_after(headers) -> float | None:
    """Seconds to wait: Retry-After, else SendGrid's X-RateLimit-Reset (epoch seconds)."""
    retry_after = _header(headers, "Retry-After")
    if retry_after and retry_after.replace(".", "", 1).isdigit():
        return float(retry_after)
    reset = _header(headers, "X-RateLimit-Reset")
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None

"""SendGrid v3 Mail Send through the official client, up to 1,000 messages per request.

Every message of a request shares one content block whose text is a substitution tag; each
personalization fills the tags with its own rendered HTML and text, subject, headers and send_at.
custom_args carry ids only (message, campaign, variant): SendGrid returns them in every event,
which is how an unknown outcome is reconciled. A message too big for substitutions goes alone.
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
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\b")


class SendGridDestination:
    name = "sendgrid"
    schedules_ahead = MAX_SCHEDULE_AHEAD - timedelta(minutes=5)  # margin for clock skew

    def __init__(self, host: str, api_key: Callable[[], str], from_email: str, from_name: str,
                 unsubscribe_group_id: int | None = None, batch_size: int = 1000, timeout_seconds: float = 30.0):
        self.host = host
        self._api_key = api_key
        self.from_email = from_email
        self.from_name = from_name
        self.unsubscribe_group_id = unsubscribe_group_id
        self.max_batch = batch_size
        self.timeout_seconds = timeout_seconds
        self._client: SendGridAPIClient | None = None
        self.requests = 0

    def deliver(self, batch: Sequence[OutgoingMessage], now: datetime) -> BatchResult:
        result = BatchResult()
        shared = [m for m in batch if _substitutions_size(m) <= SUBSTITUTIONS_LIMIT_BYTES]
        alone = [m for m in batch if _substitutions_size(m) > SUBSTITUTIONS_LIMIT_BYTES]
        # An address may appear once per request: a second message to it waits for the next request.
        requests, seen = [[]], set()
        for message in shared:
            address = message.to_email.lower()
            if address in seen:
                continue
            seen.add(address)
            requests[0].append(message)
        requests += [[m] for m in alone]
        for messages in filter(None, requests):
            try:
                self._post(messages, now, result)
            except DeliveryError as error:
                error.partial = result
                raise
        return result

    def find_accepted(self, messages: Sequence[OutgoingMessage]) -> None:
        return None  # answered by the provider's events (raw.esp_events), see reverse_etl.reconcile

    def close(self) -> None:
        self._client = None

    def request_body(self, messages: Sequence[OutgoingMessage], now: datetime) -> dict:
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

    def _post(self, messages: Sequence[OutgoingMessage], now: datetime, result: BatchResult) -> None:
        body = self.request_body(messages, now)
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
        status, errors = error.status_code, _errors(error.body)
        summary = "; ".join(f"{e.get('field') or '-'}: {e.get('message')}" for e in errors)[:500] or str(error.body)[:500]
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


def _substitutions_size(message: OutgoingMessage) -> int:
    return len(message.html.encode()) + len(message.text.encode()) + len(HTML_TAG) + len(TEXT_TAG)


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

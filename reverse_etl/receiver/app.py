"""The receiver's HTTP surface: routes, status codes and the order of checks.

POST /webhooks/sendgrid      signed SendGrid Event Webhook -> landing esp/webhook-*.jsonl, then 200
GET  <unsubscribe path>      confirmation page with a preference choice (changes nothing)
POST <unsubscribe path>      RFC 8058 one-click, or the page's form -> landing consent/unsubscribe-*.jsonl
GET  /healthz                200 while the process serves
GET  /preview/...            the campaign previews in settings.previews_dir, read-only, when
                             receiver.previews_served (see previews.py)

Files are written (and fsynced) before the answer, so a 2xx means the data is on disk; a failure to
write answers 500 and SendGrid retries. Log lines never hold an address or a token.

Abuse: at most `max_concurrent_requests` requests are in progress (more get 503 with Retry-After); a
signed webhook request already accepted within the timestamp window is refused as a replay (401); a
repeated opt-out for the same campaign and address within a short window writes nothing new.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dagster_project.personalization.render import UnsubscribeToken, verify_unsubscribe_token
from dagster_project.settings import MIN_SECRET_BYTES, UNSUBSCRIBE_SECRET_VARIABLE, ReceiverSettings, Settings
from reverse_etl.receiver import pages
from reverse_etl.receiver.events import MalformedBody, split_events
from reverse_etl.receiver.landing_writer import write_landing_file
from reverse_etl.receiver.limits import RETRY_AFTER_SECONDS, ConcurrencyLimit
from reverse_etl.receiver.previews import PREVIEW_PATH, preview_routes
from reverse_etl.receiver.recent import MemoryFull, RecentlySeen, digest_of
from reverse_etl.receiver.signature import (
    FUTURE_SKEW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    WebhookVerifier,
    load_public_key,
)
from reverse_etl.receiver.unsubscribe import record_opt_out

WEBHOOK_PATH = "/webhooks/sendgrid"
DEFAULT_UNSUBSCRIBE_PATH = "/unsubscribe"
ESP_SOURCE = "esp"  # the landing sub-folder the ESP event ingest reads
WEBHOOK_FILE_PREFIX = "webhook"
MAX_FORM_BYTES = 64 * 1024  # an unsubscribe form is a few dozen bytes
# Webhook requests remembered within the replay window: SendGrid posts a few per second at most; a
# receiver this busy answers 503 (SendGrid retries) rather than forget one and let its replay through.
MAX_REMEMBERED_REQUESTS = 100_000
MAX_REMEMBERED_OPT_OUTS = 100_000

log = logging.getLogger("mailroom.receiver")


class BodyTooLarge(Exception):
    pass


class Replayed(Exception):
    """A webhook request accepted before, sent again within its signature's window."""


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (BodyTooLarge) as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: Settings,
    receiver: ReceiverSettings,
    secret: bytes,
    *,
    unsubscribe_path: str = DEFAULT_UNSUBSCRIBE_PATH,
) -> Starlette:
    """The receiver app writing into settings.landing_dir. `secret` opens unsubscribe tokens (at least
    32 bytes, see dagster_project.settings.receiver_unsubscribe_secret); `unsubscribe_path` is the path
    of MAILROOM_UNSUBSCRIBE_URL. Raises SettingsError when a configured webhook key is not a P-256 key."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the unsubscribe secret has {len(secret)} bytes, fewer than {MIN_SECRET_BYTES}: set "
                         f"{UNSUBSCRIBE_SECRET_VARIABLE} to the secret the pipeline signs unsubscribe links with")
    if (not unsubscribe_path.startswith("/") or unsubscribe_path in (WEBHOOK_PATH, "/healthz")
            or (unsubscribe_path + "/").startswith(PREVIEW_PATH)):
        raise ValueError(f"unsubscribe path {unsubscribe_path!r} must start with '/' and not clash with another route")
    landing_dir = Path(settings.landing_dir)
    verifier = WebhookVerifier(
        load_public_key(receiver.sendgrid_public_key) if receiver.sendgrid_public_key else None,
        receiver.max_age_seconds,
    )
    if verifier.public_key is None:
        log.warning("MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY is not set: every webhook request will be refused (401)")
    # A signed request stays acceptable until its timestamp is max_age old, and a timestamp may be up to
    # FUTURE_SKEW_SECONDS ahead of our clock: remembering each for both covers its whole window.
    accepted_requests = RecentlySeen(receiver.max_age_seconds + FUTURE_SKEW_SECONDS, MAX_REMEMBERED_REQUESTS)
    recorded_opt_outs = RecentlySeen(receiver.opt_out_repeat_window_seconds, MAX_REMEMBERED_OPT_OUTS)

    def land_events(signature: str | None, timestamp: str, body: bytes) -> JSONResponse:
        verifier.verify(signature, timestamp, body)  # raises SignatureRejected
        events = split_events(body)  # raises MalformedBody
        # Keyed by what was signed, not by the signature: ECDSA signatures are malleable, so a replay
        # could carry different signature bytes for the same timestamp and body.
        signed = digest_of([timestamp.encode("ascii"), body])
        if not accepted_requests.claim(signed):  # raises MemoryFull
            raise Replayed
        try:
            if events:
                path = write_landing_file(landing_dir / ESP_SOURCE, WEBHOOK_FILE_PREFIX, events)
                log.info("webhook: %d events landed in %s", len(events), path.name)
        except BaseException:
            accepted_requests.release(signed)  # not landed: SendGrid's retry must get through
            raise
        return JSONResponse({"accepted": len(events)})

    async def sendgrid_webhook(request: Request) -> Response:
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        try:
            verifier.check_timestamp(timestamp, time.time())
            body = await _read_body(request, receiver.max_body_bytes)
            return await run_in_threadpool(land_events, request.headers.get(SIGNATURE_HEADER), timestamp, body)
        except SignatureRejected as error:
            log.warning("webhook refused: %s", error)
            return JSONResponse({"error": str(error)}, status_code=401)
        except Replayed:
            log.warning("webhook refused: a replay of a request accepted before")
            return JSONResponse({"error": "this signed request was accepted before: replay refused"}, status_code=401)
        except MemoryFull as error:
            log.warning("webhook deferred: %s", error)
            return JSONResponse({"error": "busy; retry later"}, status_code=503,
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        except BodyTooLarge:
            return JSONResponse({"error": f"body larger than {receiver.max_body_bytes} bytes"}, status_code=413)
        except MalformedBody as error:
            log.warning("webhook refused: %s", error)
            return JSONResponse({"error": str(error)}, status_code=400)

    async def unsubscribe_page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        opened = verify_unsubscribe_token(secret, token)
        if opened is None:
            return pages.invalid_link_page()
        return pages.confirmation_page(unsubscribe_path, token, opened.email)

    async def unsubscribe(request: Request) -> Response:
        try:
            body = await _read_body(request, MAX_FORM_BYTES)
        except BodyTooLarge:
            return Response("form too large", status_code=413)
        form = {}
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {name: values[-1] for name, values in parse_qs(body.decode("latin-1")).items()}
        token = request.query_params.get("token") or form.get("token", "")
        opened = verify_unsubscribe_token(secret, token)
        if opened is None:
            log.info("unsubscribe refused: invalid or missing token")
            return pages.invalid_link_page()
        # RFC 8058's one-click POST carries List-Unsubscribe=One-Click (form-encoded or multipart);
        # the confirmation page posts choice=all or choice=keep. Only "keep" leaves consent as it is.
        choice = form.get("choice", "all")
        if choice == "keep":
            return pages.kept_page()
        if choice != "all":
            return pages.bad_choice_page()
        await record_once(opened)
        return pages.unsubscribed_page()

    async def record_once(opened: UnsubscribeToken) -> None:
        """Land the opt-out, unless the same one was landed moments ago (a double click, a mail
        scanner following the link): the person is unsubscribed either way."""
        repeat_key = digest_of([opened.campaign_id.encode(), opened.email.encode()])
        try:
            first = recorded_opt_outs.claim(repeat_key)
        except MemoryFull:
            first = True  # cannot tell: a duplicate opt-out is harmless, a lost one is not
        if not first:
            log.info("unsubscribe for campaign %s already recorded moments ago; nothing new written",
                     opened.campaign_id)
            return
        try:
            path = await run_in_threadpool(record_opt_out, landing_dir, opened)
        except BaseException:
            recorded_opt_outs.release(repeat_key)
            raise
        log.info("unsubscribe recorded for campaign %s in %s", opened.campaign_id, path.name)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, sendgrid_webhook, methods=["POST"]),
            Route(unsubscribe_path, unsubscribe_page, methods=["GET"]),
            Route(unsubscribe_path, unsubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *(preview_routes(Path(settings.previews_dir)) if receiver.previews_served else []),
        ],
        middleware=[Middleware(ConcurrencyLimit, limit=receiver.max_concurrent_requests)],
    )

"""At most N requests in progress: the next one is answered 503 with Retry-After at once, instead of
queueing for a thread, so a flood (or many slow clients dribbling their bodies) cannot exhaust the
process. SendGrid retries a 503; a person's mail client or browser can simply try again.

Pure ASGI, so the count covers the whole request, body reading included. The event loop runs one
coroutine at a time and nothing is awaited between the check and the increment, so no lock is needed.
"""

from __future__ import annotations

import json

RETRY_AFTER_SECONDS = 5


class ConcurrencyLimit:
    def __init__(self, app, limit: int, exempt_paths: tuple[str, ...] = ("/healthz",)):
        self.app = app
        self.limit = max(1, limit)
        # A load balancer's health check must not fail because the receiver is busy.
        self.exempt_paths = exempt_paths
        self.in_progress = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await _busy(send, self.limit)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


async def _busy(send, limit: int) -> None:
    body = json.dumps({"error": f"busy: {limit} requests in progress; retry in {RETRY_AFTER_SECONDS} s"}).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})

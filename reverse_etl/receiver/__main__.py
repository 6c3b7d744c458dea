"""python -m reverse_etl.receiver: serve the webhook and unsubscribe receiver with uvicorn.

Configuration comes from the environment through dagster_project.settings: MAILROOM_RECEIVER_HOST /
MAILROOM_RECEIVER_PORT (127.0.0.1:8025), MAILROOM_SENDGRID_WEBHOOK_PUBLIC_KEY,
MAILROOM_WEBHOOK_MAX_AGE_SECONDS, MAILROOM_RECEIVER_MAX_CONCURRENT_REQUESTS, MAILROOM_LANDING_DIR /
MAILROOM_DATA_DIR, MAILROOM_PREVIEWS_DIR (served read-only at /preview/ on a loopback host or with
MAILROOM_RECEIVER_PREVIEWS=on), MAILROOM_UNSUBSCRIBE_URL (its
path is served) and MAILROOM_UNSUBSCRIBE_SECRET, which is required (at least 32 bytes): the receiver
refuses to start without it.
"""

from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

import uvicorn

from dagster_project.settings import (
    SettingsError,
    load_personalization_settings,
    load_receiver_settings,
    load_settings,
    receiver_unsubscribe_secret,
)
from reverse_etl.receiver.app import DEFAULT_UNSUBSCRIBE_PATH, WEBHOOK_PATH, create_app


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        receiver = load_receiver_settings()
        unsubscribe_path = urlsplit(load_personalization_settings().unsubscribe_url).path or DEFAULT_UNSUBSCRIBE_PATH
        secret = receiver_unsubscribe_secret(settings.data_dir)
        app = create_app(settings, receiver, secret, unsubscribe_path=unsubscribe_path)
    except SettingsError as error:
        print(f"mailroom receiver: {error}", file=sys.stderr)
        return 2
    base = f"http://{receiver.host}:{receiver.port}"
    print(f"Mailroom receiver listening on {base}", flush=True)
    print(f"  SendGrid Event Webhook: POST {base}{WEBHOOK_PATH}", flush=True)
    print(f"  one-click unsubscribe:  GET/POST {base}{unsubscribe_path}?token=...", flush=True)
    print(f"  landing directory:      {settings.landing_dir}", flush=True)
    if receiver.previews_served:
        print(f"  campaign previews:      GET {base}/preview/ (from {settings.previews_dir}, this machine only)",
              flush=True)
    else:
        print("  campaign previews:      not served (MAILROOM_RECEIVER_PREVIEWS=on serves them to this machine)",
              flush=True)
    # No access log: unsubscribe URLs carry tokens, which must not reach log files.
    uvicorn.run(app, host=receiver.host, port=receiver.port, access_log=False, proxy_headers=True,
                server_header=False, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sends stage: render N synthetic messages per destination into the warehouse, then hand them
to the SendGrid double, the outbox and a local SMTP server (each double in its own process, so the
sender has a core to itself), and report messages per second. The ledger must end all accepted.

    python -m benchmarks.stage sends     (MAILROOM_BENCH_MESSAGES, default 100000; SMTP gets a fifth)
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from dagster_project.settings import ActivationSettings, SmtpTarget, load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.run import send_campaigns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from activation_helpers import customer_ids, seed_messages  # noqa: E402
from doubles.sendgrid_double import SendGridDouble  # noqa: E402
from doubles.smtp_server import LocalSmtpServer  # noqa: E402


def _serve(kind: str, ready, stop, counted) -> None:
    with (SendGridDouble() if kind == "sendgrid" else LocalSmtpServer()) as server:
        ready.put(server.url if kind == "sendgrid" else (server.host, server.port))
        stop.wait()
        counted.put(len(server.deliveries) if kind == "sendgrid" else len(server.messages))


class _DoubleProcess:
    """A double serving from a child process; `received` is what it counted when stopped."""

    def __init__(self, kind: str):
        context = multiprocessing.get_context("fork")
        self._ready, self._counted, self._stop = context.Queue(), context.Queue(), context.Event()
        self._process = context.Process(target=_serve, args=(kind, self._ready, self._stop, self._counted), daemon=True)
        self.received = None

    def __enter__(self):
        self._process.start()
        self.address = self._ready.get(timeout=30)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.received = self._counted.get(timeout=120)
        self._process.join(timeout=30)


def sends() -> dict:
    settings = load_settings()
    warehouse = Warehouse(settings)
    count = int(os.environ.get("MAILROOM_BENCH_MESSAGES", "100000"))
    plan = {"sendgrid": count, "outbox": count, "smtp": max(1, count // 5)}
    outcomes = {}
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-outbox-") as outbox:
        base = ActivationSettings(outbox_dir=Path(outbox), rate_per_second={}, quiet_hours=None, frequency_cap=0,
                                  timeout_seconds=60.0)
        for destination, messages in plan.items():
            campaign = f"bench_{destination}"
            started = time.perf_counter()
            seed_messages(warehouse, campaign, customer_ids(messages, prefix=f"b{destination[:2]}_"),
                          send_at=settings.reference_time())
            seeded = time.perf_counter() - started
            if destination == "outbox":
                report = send_campaigns(settings, replace(base, destinations=("outbox",)), [campaign], log=_quiet)[0]
                received = sum(1 for _ in Path(outbox, campaign).glob("*.eml"))
            else:
                with _DoubleProcess(destination) as double:
                    if destination == "sendgrid":
                        os.environ["MAILROOM_SENDGRID_API_KEY"] = "SG.test-key.mailroom"
                        activation = replace(base, destinations=("sendgrid",), sendgrid_host=double.address)
                    else:
                        activation = replace(base, destinations=("smtp",),
                                             smtp=SmtpTarget(*double.address, username="", security="none"))
                    report = send_campaigns(settings, activation, [campaign], log=_quiet)[0]
                received = double.received
            if report.ledger != {"accepted": messages} or received != messages:
                raise SystemExit(f"{destination}: ledger {report.ledger}, {received} received of {messages}")
            outcomes[destination] = {
                "rows_loaded": messages,
                "seconds": round(report.seconds, 2),
                "messages_per_second": round(messages / report.seconds),
                "requests": sum(report.requests.values()),
                "seed_seconds": round(seeded, 2),
            }
    return outcomes


def _quiet(message: str) -> None:
    pass

"""The sends stage: render N synthetic messages per destination into the warehouse, then hand them
to the SendGrid double, the outbox and a local SMTP server (each double in its own process, so the
sender has a core to itself), and report messages per second. The ledger must end all accepted.

    python -m benchmarks.stage sends     (MAILROOM_BENCH_MESSAGES, default 100000; SMTP gets a fifth;
                                          MAILROOM_BENCH_DESTINATIONS, default sendgrid,outbox,smtp)

One destination alone, on a scratch warehouse of its own (MAILROOM_WAREHOUSE picks the engine), with a
profile of the send if asked, and - with --record - its figure put into the sends results file and
BENCHMARKS.md:

    python -m benchmarks.sends --destinations outbox --messages 20000 [--profile out.prof] [--record]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.settings import ActivationSettings, SmtpTarget, load_settings
from dagster_project.warehouse import Warehouse
from reverse_etl.run import send_campaigns

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "BENCHMARKS.md"
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


DESTINATIONS = ("sendgrid", "outbox", "smtp")


def sends(destinations: tuple[str, ...] | None = None, profile: Path | None = None) -> dict:
    """Figures per destination. `destinations` defaults to MAILROOM_BENCH_DESTINATIONS, else all three;
    `profile`: write a cProfile of the sends (not the seeding) there."""
    settings = load_settings()
    warehouse = Warehouse(settings)
    count = int(os.environ.get("MAILROOM_BENCH_MESSAGES", "100000"))
    destinations = destinations or _destinations(os.environ.get("MAILROOM_BENCH_DESTINATIONS", ""))
    plan = {d: n for d, n in {"sendgrid": count, "outbox": count, "smtp": max(1, count // 5)}.items()
            if d in destinations}
    profiler = cProfile.Profile() if profile else None
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
            if profiler:
                profiler.enable()
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
            if profiler:
                profiler.disable()
            if report.ledger != {"accepted": messages} or received != messages:
                raise SystemExit(f"{destination}: ledger {report.ledger}, {received} received of {messages}")
            outcomes[destination] = {
                "rows_loaded": messages,
                "seconds": round(report.seconds, 2),
                "messages_per_second": round(messages / report.seconds),
                "requests": sum(report.requests.values()),
                "seed_seconds": round(seeded, 2),
            }
    if profiler:
        profiler.dump_stats(profile)
    return outcomes


def _destinations(text: str) -> tuple[str, ...]:
    chosen = tuple(d.strip() for d in text.split(",") if d.strip()) or DESTINATIONS
    unknown = sorted(set(chosen) - set(DESTINATIONS))
    if unknown:
        raise SystemExit(f"unknown destination(s) {', '.join(unknown)}: choose from {', '.join(DESTINATIONS)}")
    return chosen


def _quiet(message: str) -> None:
    pass


def record(outcomes: dict, scale: int, warehouse: str, results: Path = RESULTS, report: Path = REPORT) -> Path:
    """Put these destinations' figures into the sends results file of that scale and warehouse (the one
    `benchmarks.run --only-sends` writes), each marked with when it was measured, and rebuild BENCHMARKS.md.
    The stage's own seconds and peak memory stay those of the last whole sends run."""
    from benchmarks.report import write_report
    from benchmarks.run import SENDS_STAGE

    path = results / f"{scale}-{warehouse}-sends.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run `python -m benchmarks.run --only-sends --scale {scale}` once")
    result = json.loads(path.read_text())
    stage = result["stages"][SENDS_STAGE]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for destination, figures in outcomes.items():
        stage["destinations"][destination] = {**figures, "recorded_at": measured_at}
    path.write_text(json.dumps(result, indent=2) + "\n")
    write_report(results, report)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--destinations", default="outbox", help="comma-separated: sendgrid, outbox, smtp")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--warehouse", default=os.environ.get("MAILROOM_WAREHOUSE", "duckdb"))
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sends here")
    parser.add_argument("--record", action="store_true",
                        help="put the figures into benchmarks/results/<messages>-<warehouse>-sends.json "
                        "and BENCHMARKS.md")
    args = parser.parse_args(argv)
    from benchmarks.run import AS_OF, environment, scratch_warehouse

    with tempfile.TemporaryDirectory(prefix="mailroom-bench-sends-") as scratch:
        with scratch_warehouse(args.warehouse, Path(scratch), "mailroom_bench_sends",
                               landing_dir=Path(scratch) / "landing") as settings:
            saved = dict(os.environ)
            os.environ.update(environment(settings))
            os.environ.update({"MAILROOM_BENCH_MESSAGES": str(args.messages), "MAILROOM_AS_OF": AS_OF.isoformat()})
            try:
                outcomes = sends(_destinations(args.destinations), args.profile)
            finally:
                os.environ.clear()
                os.environ.update(saved)
    print(json.dumps(outcomes))
    if args.record:
        print(f"recorded in {record(outcomes, args.messages, args.warehouse)} and BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

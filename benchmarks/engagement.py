"""The engagement-loop stages:

    python -m benchmarks.stage crm-sync    diff and sync MAILROOM_BENCH_MESSAGES synthetic contacts to the
                                           HubSpot double (own process), then the re-run after 1% changed
    python -m benchmarks.stage receiver    signed SendGrid events per second accepted by the receiver
                                           (uvicorn in its own process) over loopback, none lost
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dagster_project.settings import ReceiverSettings, Settings, SyncSettings, load_settings
from dagster_project.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _serve_hubspot(ready, stop, counted) -> None:
    from doubles.hubspot_double import HubSpotDouble

    with HubSpotDouble() as double:
        ready.put((double.url, double.access_token))
        stop.wait()
        counted.put(len(double.contacts))


def crm_sync() -> dict:
    from reverse_etl.sync.run import sync_model

    from test_sync import model_rows, seed_model

    settings = load_settings()
    warehouse = Warehouse(settings)
    count = int(os.environ.get("MAILROOM_BENCH_MESSAGES", "100000"))
    with warehouse.connect() as conn:  # after a full run dbt has built the model: synthetic rows stand in
        conn.execute("DROP TABLE IF EXISTS marts.sync_crm__contacts")
    seed_model(warehouse, model_rows(count))
    context = multiprocessing.get_context("fork")
    ready, counted, stop = context.Queue(), context.Queue(), context.Event()
    process = context.Process(target=_serve_hubspot, args=(ready, stop, counted), daemon=True)
    process.start()
    url, token = ready.get(timeout=30)
    os.environ["MAILROOM_HUBSPOT_ACCESS_TOKEN"] = token
    sync = SyncSettings(destination="hubspot", hubspot_host=url, rate_per_second=0.0)
    try:
        first = sync_model(warehouse, sync, log=lambda m: None)
        changed = [f"cust-{i:05d}" for i in range(1, count + 1, 100)]  # 1%
        with warehouse.connect() as conn:
            conn.execute("UPDATE marts.sync_crm__contacts SET opens_30d = opens_30d + 1 WHERE customer_id = ANY(?)",
                         [changed])
        second = sync_model(warehouse, sync, log=lambda m: None)
    finally:
        stop.set()
        stored = counted.get(timeout=60)
        process.join(timeout=30)
    if first.acknowledged != count or second.acknowledged != len(changed) or stored != count:
        raise SystemExit(f"crm sync: {first.acknowledged} then {second.acknowledged} acknowledged, {stored} stored")
    return {
        "full sync": {"rows_loaded": first.acknowledged, "seconds": round(first.seconds, 2),
                      "requests": first.requests},
        "after 1% changed": {"rows_loaded": second.acknowledged, "seconds": round(second.seconds, 2),
                             "requests": second.requests, "rows_unchanged": second.skipped},
    }


def _serve_receiver(data_dir: str, public_key: str, port_queue) -> None:
    import socket

    import uvicorn

    from reverse_etl.receiver import create_app

    settings = Settings(warehouse="duckdb", data_dir=Path(data_dir))
    app = create_app(settings, ReceiverSettings(sendgrid_public_key=public_key), b"bench-secret-of-at-least-32-bytes")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_queue.put(sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(sockets=[sock])


def receiver() -> dict:
    import json

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    events_total = int(os.environ.get("MAILROOM_BENCH_EVENTS", "100000"))
    per_request = 500
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    stamp = str(int(time.time()))
    bodies = []
    for start in range(0, events_total, per_request):
        batch = [{"email": f"p{n}@example.com", "timestamp": int(stamp), "event": "delivered",
                  "sg_event_id": f"bench-{n:08d}", "sg_message_id": f"m{n}.filter"}
                 for n in range(start, min(start + per_request, events_total))]
        body = json.dumps(batch).encode()
        signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        bodies.append((body, signature))
    with tempfile.TemporaryDirectory(prefix="mailroom-bench-receiver-") as data_dir:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        process = context.Process(target=_serve_receiver, args=(data_dir, public, ports), daemon=True)
        process.start()
        url = f"http://127.0.0.1:{ports.get(timeout=60)}/webhooks/sendgrid"
        for _ in range(100):  # wait until it answers
            try:
                urllib.request.urlopen(url.replace("/webhooks/sendgrid", "/healthz"), timeout=1)
                break
            except OSError:
                time.sleep(0.1)

        def post(item) -> int:
            body, signature = item
            request = urllib.request.Request(url, data=body, headers={
                "Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": signature,
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp})
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(post, bodies))
        seconds = time.perf_counter() - started
        process.terminate()
        process.join(timeout=30)
        landed = sum(len(path.read_text().splitlines()) for path in Path(data_dir, "landing", "esp").glob("*.jsonl"))
    if set(statuses) != {200} or landed != events_total:
        raise SystemExit(f"receiver: statuses {set(statuses)}, {landed} of {events_total} events landed")
    return {"webhook": {"rows_loaded": landed, "seconds": round(seconds, 2), "requests": len(bodies),
                        "events_per_second": round(landed / seconds)}}

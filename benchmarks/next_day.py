"""The next day's landing files for the second-day benchmark: about 1% new CDP and email-provider events.

New events are copies of a seeded random sample of the existing ones, each with a new id and moved one
day later, so they look like yesterday's traffic (the same customers, event types and payload shapes)
without running the generator's simulation again. They go into new files; yesterday's files are left as
they are, as a landing directory grows in production.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

SHARE = 0.01
DAY = timedelta(days=1)
CDP_TIME_FIELDS = ("timestamp", "receivedAt", "sentAt", "originalTimestamp")


def _later(text: str, days: int) -> str:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00")) + days * DAY
    return instant.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sample_lines(files: list[Path], rng: random.Random, share: float) -> list[str]:
    picked = []
    for path in files:
        with path.open(encoding="utf-8", errors="strict") as lines:
            picked.extend(line for line in lines if rng.random() < share)
    return picked


def _new_cdp_event(line: str, rng: random.Random, days: int) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None  # the sample's deliberately broken lines stay yesterday's problem
    if not isinstance(event, dict) or "messageId" not in event:
        return None
    event["messageId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for field in CDP_TIME_FIELDS:
        if isinstance(event.get(field), str):
            try:
                event[field] = _later(event[field], days)
            except ValueError:
                return None
    return json.dumps(event, separators=(",", ":"))


def _new_esp_event(line: str, rng: random.Random, days: int) -> str | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("timestamp"), int):
        return None
    event["sg_event_id"] = uuid.UUID(int=rng.getrandbits(128)).hex[:22]
    event["timestamp"] += days * int(DAY.total_seconds())
    return json.dumps(event, separators=(",", ":"))


def write_next_day(landing: Path, day: int = 1, seed: int = 7, share: float = SHARE) -> dict[str, int]:
    """Write day `day`'s new events beside the sample's files; return how many lines each source got."""
    rng = random.Random(f"next-day-{seed}-{day}")
    written = {}
    for source, make in (("cdp", _new_cdp_event), ("esp", _new_esp_event)):
        files = sorted(path for path in (landing / source).glob("events-*.jsonl") if "day" not in path.name)
        lines = [new for line in _sample_lines(files, rng, share) if (new := make(line, rng, day)) is not None]
        target = landing / source / f"events-day-{day:02d}.jsonl"
        temporary = target.with_suffix(".tmp")
        temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        temporary.rename(target)  # the loader never sees half a file
        written[source] = len(lines)
    return written

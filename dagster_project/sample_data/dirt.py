"""Deliberately dirty input, and the record of every dirty line in truth/dirty_rows.jsonl.

Dirty lines are *extra* lines written right after a clean one (derived from it), so the clean data
set stays exactly what the latent truth describes. Each dirty line has exactly one flaw, of one kind:

- malformed_json: a line cut off mid-object (CSV: a row with too few fields)
- missing_field: a required field absent (no messageId / timestamp / event, no ids at all, ...)
- wrong_type: timestamp as a number, properties as a string, userId as an object
- invalid_email: an email that does not look like one ('jane@', 'not-an-email')
- duplicate_key: a key seen on an earlier clean line: an exact re-send, or a different event that
  reuses the key (ingest keeps the first and quarantines the later one)
- future_timestamp: a timestamp in 2099
- invalid_value: a value outside the documented vocabulary (consent status 'subscribed')

Every kind a source can have appears at least once, even in tiny samples: until a kind has been
used it is injected much more often, and any still missing at the end are appended then."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from dagster_project.sample_data.cdp import encode
from dagster_project.sample_data.ids import Ids
from dagster_project.sample_data.writers import JsonLines

KINDS = ("malformed_json", "missing_field", "wrong_type", "invalid_email", "duplicate_key", "future_timestamp",
         "invalid_value")
INVALID_EMAILS = ("jane@", "not-an-email", "john.doe@example", "@example.com", "jane doe@example.com",
                  "mary..smith@", "bob@@example.com")
FORCED_RATE = 0.04  # chance per clean line of injecting a kind not seen yet


class DirtLog:
    """truth/dirty_rows.jsonl: one line per dirty row with source, file, line and kind."""

    def __init__(self, root: Path):
        self._out = JsonLines(root, "truth/dirty_rows.jsonl")
        self.by_source: dict[str, int] = {}
        self.by_kind: dict[str, int] = {kind: 0 for kind in KINDS}

    def record(self, source: str, file: str, line: int, kind: str, detail: str) -> None:
        self._out.write(encode({"source": source, "file": file, "line": line, "kind": kind, "detail": detail}))
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.by_kind[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def close(self) -> None:
        self._out.close()


class Injector:
    """Decides, after each clean line of one source, whether a dirty line follows, and writes it."""

    def __init__(self, source: str, rng, rate: float, kinds: dict[str, float], log: DirtLog):
        self.source = source
        self.rng = rng
        self.rate = rate
        self.kinds = tuple(kinds)
        self.weights = tuple(kinds.values())
        self.log = log
        self.missing = list(kinds)
        rng.shuffle(self.missing)
        self.recent: deque = deque(maxlen=64)  # recent clean lines: duplicates copy one of these

    def _pick(self) -> str | None:
        rng = self.rng
        if self.missing and rng.random() < FORCED_RATE:
            return self.missing.pop()
        if rng.random() < self.rate:
            kind = rng.choices(self.kinds, self.weights)[0]
            if kind in self.missing:
                self.missing.remove(kind)
            return kind
        return None

    def after(self, writer, clean) -> None:
        """Call with every clean line (or CSV row) right after writing it."""
        self.recent.append(clean)
        kind = self._pick()
        if kind is not None:
            self._inject(writer, kind, clean)

    def finish(self, writer) -> None:
        """Append the kinds not used yet, derived from the last clean line."""
        while self.missing and self.recent:
            self._inject(writer, self.missing.pop(), self.recent[-1])

    def _inject(self, writer, kind: str, clean) -> None:
        dirty, detail = self.make(kind, clean)
        file, line = writer.write(dirty)
        self.log.record(self.source, file, line, kind, detail)

    def make(self, kind: str, clean):  # pragma: no cover - overridden
        raise NotImplementedError


def _truncate(rng, line: str) -> str:
    # Any proper prefix of a JSON object is invalid JSON: the closing brace is the last character.
    return line[: rng.randint(min(12, len(line) - 1), len(line) - 2)].rstrip()


class CdpDirt(Injector):
    def __init__(self, rng, ids: Ids, log: DirtLog, rate: float = 0.002):
        super().__init__("cdp", rng, rate, {
            "malformed_json": 2, "missing_field": 3, "wrong_type": 3, "invalid_email": 2, "duplicate_key": 3,
            "future_timestamp": 1,
        }, log)
        self.ids = ids

    def make(self, kind: str, clean: str) -> tuple[str, str]:
        rng = self.rng
        if kind == "malformed_json":
            return _truncate(rng, clean), "truncated object"
        record = json.loads(clean)
        if kind == "duplicate_key":
            if rng.random() < 0.5:
                return rng.choice(self.recent), "exact re-send of an earlier event"
            earlier = json.loads(rng.choice(self.recent))
            record["messageId"] = earlier["messageId"]
            return encode(record), "a different event reusing an earlier messageId"
        record["messageId"] = self.ids.uuid()  # the flawed copy is a new event, not a duplicate
        if kind == "missing_field":
            options = ["messageId", "timestamp", "type", "userId+anonymousId"]
            if record.get("type") == "track":
                options += ["event", "event"]
            if record.get("type") == "alias":
                options += ["previousId", "previousId"]
            field = rng.choice(options)
            for name in field.split("+"):
                record.pop(name, None)
            return encode(record), f"no {field}"
        if kind == "wrong_type":
            option = rng.choice(("timestamp", "properties", "userId"))
            if option == "timestamp":
                record["timestamp"] = _epoch_seconds(record["timestamp"])
                return encode(record), "timestamp as a number"
            if option == "properties":
                inner = record.get("properties") or record.get("traits") or {}
                record["properties"] = json.dumps(inner)
                return encode(record), "properties as a string"
            record["userId"] = {"id": record.get("userId") or record.get("anonymousId")}
            return encode(record), "userId as an object"
        if kind == "invalid_email":
            bad = rng.choice(INVALID_EMAILS)
            if record.get("type") == "identify" and isinstance(record.get("traits"), dict):
                record["traits"]["email"] = bad
                return encode(record), f"traits.email={bad!r}"
            record.setdefault("context", {})["traits"] = {"email": bad}
            return encode(record), f"context.traits.email={bad!r}"
        if kind == "future_timestamp":
            month_day = record["timestamp"][4:10]
            record["timestamp"] = "2099" + ("-03-01" if month_day == "-02-29" else month_day) + record["timestamp"][10:]
            return encode(record), "timestamp in 2099"
        raise ValueError(kind)


class ConsentDirt(Injector):
    def __init__(self, rng, ids: Ids, log: DirtLog, rate: float = 0.003):
        super().__init__("consent", rng, rate, {"missing_field": 1, "invalid_value": 1}, log)
        self.ids = ids

    def make(self, kind: str, clean: str) -> tuple[str, str]:
        rng = self.rng
        record = json.loads(clean)
        record["event_id"] = f"cev_{self.ids.hex(20)}"
        if kind == "missing_field":
            if rng.random() < 0.7:
                record.pop("status")
                return encode(record), "no status"
            record.pop("user_id", None)
            record.pop("email", None)
            return encode(record), "neither user_id nor email"
        if kind == "invalid_value":
            record["status"] = rng.choice(("subscribed", "OPT_IN", "unknown", "pending"))
            return encode(record), f"status={record['status']!r}"
        raise ValueError(kind)


class EspDirt(Injector):
    def __init__(self, rng, log: DirtLog, rate: float = 0.0015):
        super().__init__("esp", rng, rate, {"missing_field": 1, "duplicate_key": 1}, log)

    def make(self, kind: str, clean: str) -> tuple[str, str]:
        rng = self.rng
        if kind == "duplicate_key":  # a webhook retry delivers the same event again
            return rng.choice(self.recent), "webhook retry of an earlier event"
        record = json.loads(clean)
        if rng.random() < 0.8:
            record.pop("sg_event_id")
            return encode(record), "no sg_event_id"
        record["sg_event_id"] = record["sg_event_id"][::-1]  # a fresh id; the flaw is the missing email
        record.pop("email")
        return encode(record), "no email"


class CrmDirt(Injector):
    def __init__(self, rng, log: DirtLog, rate: float = 0.004):
        super().__init__("crm", rng, rate, {"missing_field": 1, "invalid_email": 1, "duplicate_key": 1,
                                            "malformed_json": 0.5}, log)

    def make(self, kind: str, clean: list[str]) -> tuple[list[str], str]:
        rng = self.rng
        row = list(clean)
        if kind == "missing_field":
            row[0] = ""
            return row, "no hs_object_id"
        if kind == "invalid_email":
            row[1] = rng.choice(INVALID_EMAILS)
            return row, f"email={row[1]!r}"
        if kind == "duplicate_key":
            return list(rng.choice(self.recent)), "the same contact version exported twice"
        if kind == "malformed_json":
            return row[: rng.randint(3, len(row) - 2)], "row with too few fields"
        raise ValueError(kind)


def _epoch_seconds(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())

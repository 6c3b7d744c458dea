"""The sample data generator: deterministic, streaming, in the landing formats of
docs/landing-files.md, with exactly the dirty rows it declares and latent truth that really drives the
events. Small samples keep these tests fast."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
import pytest

from dagster_project.sample_data import generate
from dagster_project.sample_data.dirt import KINDS

ROOT = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 1)
CUSTOMERS = 300
SEED = 5
PER_FILE = 1000
WINDOW_START = datetime(2026, 11, 1, tzinfo=timezone.utc) - timedelta(days=180)
WINDOW_END = datetime(2026, 11, 1, tzinfo=timezone.utc)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PLACEHOLDERS = {"null", "none", "undefined", "anonymous", "n/a", "na", "-"}
CDP_TYPES = {"identify", "track", "page", "screen", "group", "alias"}
ESP_EVENTS = {"processed", "delivered", "deferred", "open", "click", "bounce", "dropped", "spamreport",
              "unsubscribe", "group_unsubscribe", "group_resubscribe"}
CRM_HEADER = ["hs_object_id", "email", "firstname", "lastname", "phone", "mobilephone", "address", "city", "zip",
              "country", "hs_timezone", "lifecyclestage", "user_id", "createdate", "lastmodifieddate"]
CONSENT_VOCABULARY = {
    "channel": {"email", "sms", "push"},
    "status": {"opt_in", "opt_out"},
    "jurisdiction": {"EU", "UK", "US", "CA", "OTHER"},
    "lawful_basis": {"consent", "legitimate_interest", "implied", "contract"},
}


# ---------------------------------------------------------------------------------------------
# Reading a generated data set
# ---------------------------------------------------------------------------------------------


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.name.endswith(".gz") else open(path, encoding="utf-8")


def _jsonl_rows(landing: Path, folder: str) -> list[tuple[str, int, str, dict | None]]:
    """(relative file, line number, raw text, parsed object or None), in load (file name) order."""
    rows = []
    for path in sorted((landing / folder).iterdir()):
        if path.name.startswith("."):
            continue
        with _open_text(path) as handle:
            for number, text in enumerate(handle, start=1):
                text = text.rstrip("\n")
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    record = None
                rows.append((f"{folder}/{path.name}", number, text, record if isinstance(record, dict) else None))
    return rows


def _csv_rows(path: Path, relative: str) -> tuple[list[str], list[tuple[str, int, list[str]]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [(relative, reader.line_num, values) for values in reader]
    return header, rows


def _utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip())
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


class Sample:
    def __init__(self, landing: Path):
        self.landing = landing
        self.cdp = _jsonl_rows(landing, "cdp")
        self.esp = _jsonl_rows(landing, "esp")
        self.consent = _jsonl_rows(landing, "consent")
        self.crm_header, self.crm = _csv_rows(landing / "crm" / "contacts.csv", "crm/contacts.csv")
        self.catalog_header, self.catalog = _csv_rows(landing / "catalog" / "products.csv", "catalog/products.csv")
        with open(landing / "truth" / "customers.csv", newline="", encoding="utf-8") as handle:
            self.truth = list(csv.DictReader(handle))
        self.summary = json.loads((landing / "truth" / "summary.json").read_text())
        self.dirty = {
            (row["source"], row["file"], row["line"]): row["kind"]
            for row in map(json.loads, (landing / "truth" / "dirty_rows.jsonl").read_text().splitlines())
        }
        self.by_user = {row["user_id"]: row for row in self.truth}
        self.by_email = {row["email"]: row for row in self.truth}

    def clean(self, source: str):
        rows = {"cdp": self.cdp, "esp": self.esp, "consent": self.consent}[source]
        return [(f, n, r) for f, n, _, r in rows if (source, f, n) not in self.dirty]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "landing"
    generate(out_dir=out, customers=CUSTOMERS, seed=SEED, as_of=AS_OF, events_per_file=PER_FILE)
    return out


@pytest.fixture(scope="module")
def sample(landing) -> Sample:
    return Sample(landing)


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# An independent reading of docs/landing-files.md: which flaws does one row have?
# ---------------------------------------------------------------------------------------------


def _email_problem(value) -> set[str]:
    if value is None or value == "":
        return set()
    if not isinstance(value, str):
        return {"wrong_type"}
    if value.strip().lower() in PLACEHOLDERS or EMAIL.match(value.strip()):
        return set()
    return {"invalid_email"}


def _time_problem(value, epoch: bool = False) -> set[str]:
    if value is None or value == "":
        return {"missing_field"}
    if epoch:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"wrong_type"}
        moment = datetime.fromtimestamp(value, timezone.utc)
    else:
        if not isinstance(value, str):
            return {"wrong_type"}
        try:
            moment = _utc(value)
        except ValueError:
            return {"wrong_type"}
    return {"future_timestamp"} if moment > WINDOW_END + timedelta(days=1) else set()


def _id_problem(value) -> set[str]:
    return (set() if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            else {"wrong_type"})


def cdp_problems(record: dict | None) -> set[str]:
    if record is None:
        return {"malformed_json"}
    found = set()
    if not record.get("messageId"):
        found.add("missing_field")
    kind = record.get("type")
    if not kind:
        found.add("missing_field")
    elif kind not in CDP_TYPES:
        found.add("invalid_value")
    found |= _time_problem(record.get("timestamp"))
    found |= _id_problem(record.get("userId")) | _id_problem(record.get("anonymousId"))
    if not record.get("userId") and not record.get("anonymousId"):
        found.add("missing_field")
    if kind == "track" and not record.get("event"):
        found.add("missing_field")
    if kind == "alias" and not (record.get("previousId") and record.get("userId")):
        found.add("missing_field")
    for name in ("traits", "properties", "context"):
        if record.get(name) is not None and not isinstance(record[name], dict):
            found.add("wrong_type")
    if isinstance(record.get("traits"), dict):
        found |= _email_problem(record["traits"].get("email"))
    context_traits = (record.get("context") or {}).get("traits") if isinstance(record.get("context"), dict) else None
    if isinstance(context_traits, dict):
        found |= _email_problem(context_traits.get("email"))
    for name in ("receivedAt", "sentAt"):
        if record.get(name):
            found |= _time_problem(record[name])
    return found


def consent_problems(record: dict | None) -> set[str]:
    if record is None:
        return {"malformed_json"}
    found = set()
    for name in ("event_id", "source"):
        if not record.get(name):
            found.add("missing_field")
    if not record.get("user_id") and not record.get("email"):
        found.add("missing_field")
    for name, allowed in CONSENT_VOCABULARY.items():
        if not record.get(name):
            found.add("missing_field")
        elif record[name] not in allowed:
            found.add("invalid_value")
    found |= _email_problem(record.get("email"))
    found |= _time_problem(record.get("occurred_at"))
    return found


def esp_problems(record: dict | None) -> set[str]:
    if record is None:
        return {"malformed_json"}
    found = set()
    for name in ("sg_event_id", "event", "email"):
        if not record.get(name):
            found.add("missing_field")
    if record.get("event") and record["event"] not in ESP_EVENTS:
        found.add("invalid_value")
    found |= _email_problem(record.get("email"))
    found |= _time_problem(record.get("timestamp"), epoch=True)
    category = record.get("category")
    if category is not None and not isinstance(category, str) and not (
            isinstance(category, list) and all(isinstance(item, str) for item in category)):
        found.add("wrong_type")
    return found


def crm_problems(values: list[str]) -> set[str]:
    if len(values) != len(CRM_HEADER):
        return {"malformed_json"}
    row = dict(zip(CRM_HEADER, values))
    found = set()
    for name in ("hs_object_id", "createdate", "lastmodifieddate"):
        if not row[name]:
            found.add("missing_field")
    for name in ("createdate", "lastmodifieddate"):
        if row[name]:
            found |= _time_problem(row[name])
    return found | _email_problem(row["email"])


def _rows_with_problems(sample: Sample):
    """Every row of every source with its flaws, duplicate keys included (a key seen on an earlier
    loadable row, in file name and line order, as ingest loads them)."""
    plans = (
        ("cdp", [(f, n, r) for f, n, _, r in sample.cdp], cdp_problems, lambda r: r["messageId"]),
        ("esp", [(f, n, r) for f, n, _, r in sample.esp], esp_problems, lambda r: r["sg_event_id"]),
        ("consent", [(f, n, r) for f, n, _, r in sample.consent], consent_problems, lambda r: r["event_id"]),
        ("crm", sample.crm, crm_problems, lambda v: (v[0], _utc(v[14]))),
    )
    for source, rows, problems, key in plans:
        seen = set()
        for file, line, record in rows:
            found = problems(record)
            if not found:
                if key(record) in seen:
                    found = {"duplicate_key"}
                seen.add(key(record))
            yield source, file, line, found


# ---------------------------------------------------------------------------------------------
# Determinism, format, sharding
# ---------------------------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_files_and_another_seed_differs(landing, tmp_path):
    again = tmp_path / "again"
    generate(out_dir=again, customers=CUSTOMERS, seed=SEED, as_of=AS_OF, events_per_file=PER_FILE)
    first, second = _all_files(landing), _all_files(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []

    other = tmp_path / "other"
    generate(out_dir=other, customers=CUSTOMERS, seed=SEED + 1, as_of=AS_OF, events_per_file=PER_FILE)
    different = _all_files(other)
    for name in ("cdp/events-00000.jsonl", "esp/events-00000.jsonl", "crm/contacts.csv", "truth/customers.csv"):
        assert different[name] != first[name], name


def test_gzip_output_is_deterministic_and_holds_the_same_lines(landing, tmp_path):
    runs = []
    for name in ("one", "two"):
        out = tmp_path / name
        generate(out_dir=out, customers=CUSTOMERS, seed=SEED, as_of=AS_OF, events_per_file=PER_FILE, gzip=True)
        runs.append(_all_files(out))
    assert runs[0] == runs[1]
    shards = [name for name in runs[0] if name.startswith(("cdp/", "esp/"))]
    assert shards and all(name.endswith(".jsonl.gz") for name in shards)
    # No modification time and no file name in the gzip header: identical on any day, under any name.
    assert all(runs[0][name][3:8] == b"\0\0\0\0\0" for name in shards)
    for name in shards:
        assert gzip.decompress(runs[0][name]) == (landing / name.removesuffix(".gz")).read_bytes()
    # Line numbers of dirty rows refer to the decompressed lines, so they are the same too.
    dirty = runs[0]["truth/dirty_rows.jsonl"].decode().replace(".jsonl.gz", ".jsonl")
    assert dirty == (landing / "truth" / "dirty_rows.jsonl").read_text()


def test_shards_hold_events_per_file_lines_and_the_summary_counts_them(sample, tmp_path):
    for folder, total_key in (("cdp", "cdp_events"), ("esp", "esp_events")):
        rows = sample.cdp if folder == "cdp" else sample.esp
        per_file = Counter(file for file, _, _, _ in rows)
        names = sorted(per_file)
        assert names == [f"{folder}/events-{i:05d}.jsonl" for i in range(len(names))]
        assert len(names) == -(-len(rows) // PER_FILE) >= 2
        assert all(per_file[name] == PER_FILE for name in names[:-1]) and 0 < per_file[names[-1]] <= PER_FILE
        assert sample.summary[total_key] == len(rows)
        assert {n: c for n, c in sample.summary["files"].items() if n.startswith(folder)} == dict(per_file)
    assert sample.summary["consent_events"] == len(sample.consent)
    assert sample.summary["crm_rows"] == len(sample.crm)
    assert sample.summary["dirty_rows"] == len(sample.dirty)

    one_file = tmp_path / "big-shards"
    summary = generate(out_dir=one_file, customers=50, seed=SEED, as_of=AS_OF)
    assert sorted(p.name for p in (one_file / "cdp").iterdir()) == ["events-00000.jsonl"]
    assert summary["cdp_files"] == 1


def test_regenerating_into_the_same_directory_leaves_no_stale_shards(tmp_path):
    out = tmp_path / "landing"
    generate(out_dir=out, customers=100, seed=SEED, as_of=AS_OF, events_per_file=100)
    assert len(list((out / "cdp").iterdir())) > 2
    generate(out_dir=out, customers=100, seed=SEED, as_of=AS_OF, events_per_file=100_000)
    assert sorted(p.name for p in (out / "cdp").iterdir()) == ["events-00000.jsonl"]


def test_every_jsonl_line_is_json_or_declared_malformed(sample):
    for source, rows in (("cdp", sample.cdp), ("esp", sample.esp), ("consent", sample.consent)):
        for file, line, text, record in rows:
            assert text.strip(), (file, line)
            if record is None:
                assert sample.dirty.get((source, file, line)) == "malformed_json", (file, line, text[:80])


# ---------------------------------------------------------------------------------------------
# Dirty rows
# ---------------------------------------------------------------------------------------------


def test_dirty_rows_are_dirty_as_stated_and_every_other_row_is_clean(sample):
    checked = 0
    for source, file, line, found in _rows_with_problems(sample):
        kind = sample.dirty.get((source, file, line))
        if kind is None:
            assert found == set(), (source, file, line, found)
        else:
            assert found == {kind}, (source, file, line, kind, found)
            checked += 1
    assert checked == len(sample.dirty) > 0


def test_ingest_rules_quarantine_exactly_the_declared_dirty_rows(sample):
    """Replays the project's ingest rules (reader, parse, dedupe on key) without a warehouse."""
    from dagster_project.ingest.reader import landing_files, read_records
    from dagster_project.ingest.sources import SOURCES
    from dagster_project.ingest.values import Clock, Rejected

    clock = Clock(WINDOW_END)
    quarantined = set()
    for name, source in SOURCES.items():
        keys = [c.name for c in source.columns]
        seen = set()
        for path in landing_files(sample.landing, source):
            relative = path.relative_to(sample.landing).as_posix()
            for raw in read_records(path, source):
                rejected = raw.problem is not None
                if not rejected:
                    try:
                        values = source.parse(raw.record, clock)
                    except Rejected:
                        rejected = True
                if not rejected:
                    key = tuple(values[keys.index(k)] for k in source.key)
                    rejected = key in seen
                    seen.add(key)
                if rejected:
                    quarantined.add((name, relative, raw.line))
    assert quarantined == set(sample.dirty)


def test_every_dirt_kind_is_present_and_dirt_stays_rare(sample):
    kinds = Counter(sample.dirty.values())
    assert set(kinds) == set(KINDS)
    by_source = defaultdict(set)
    for (source, _, _), kind in sample.dirty.items():
        by_source[source].add(kind)
    assert by_source["cdp"] >= {"malformed_json", "missing_field", "wrong_type", "invalid_email", "duplicate_key",
                                "future_timestamp"}
    assert by_source["crm"] >= {"missing_field", "invalid_email"}
    assert by_source["consent"] >= {"missing_field", "invalid_value"}
    assert by_source["esp"] >= {"missing_field", "duplicate_key"}
    lines = len(sample.cdp) + len(sample.esp) + len(sample.consent) + len(sample.crm)
    assert len(sample.dirty) / lines < 0.01
    cdp_details = {json.loads(line)["detail"] for line in
                   (sample.landing / "truth" / "dirty_rows.jsonl").read_text().splitlines()
                   if json.loads(line)["kind"] == "duplicate_key" and json.loads(line)["source"] == "cdp"}
    assert cdp_details  # re-sends and different events reusing a messageId


def test_dirt_share_is_small_at_a_larger_scale(tmp_path):
    summary = generate(out_dir=tmp_path / "landing", customers=3000, seed=SEED, as_of=AS_OF)
    lines = summary["cdp_events"] + summary["esp_events"] + summary["consent_events"] + summary["crm_rows"]
    assert 0.001 <= summary["dirty_rows"] / lines <= 0.005


# ---------------------------------------------------------------------------------------------
# Truth and realism
# ---------------------------------------------------------------------------------------------


def test_truth_has_one_valid_row_per_customer(sample):
    truth = sample.truth
    assert len(truth) == CUSTOMERS == sample.summary["customers"]
    assert len({row["user_id"] for row in truth}) == len({row["email"] for row in truth}) == CUSTOMERS
    zones = available_timezones()
    categories = {row[2] for _, _, row in sample.catalog}
    jurisdictions = {"EU", "UK", "US", "CA"}
    for row in truth:
        assert row["email"] == row["email"].strip().lower() and EMAIL.match(row["email"])
        assert row["timezone"] in zones
        assert row["jurisdiction"] in jurisdictions
        assert (row["country"] == "GB") == (row["jurisdiction"] == "UK")
        assert (row["country"] in ("US", "CA")) == (row["jurisdiction"] in ("US", "CA"))
        favourites = row["favourite_categories"].split("|")
        assert len(favourites) == len(set(favourites)) == 3 and set(favourites) <= categories
        assert 0 <= int(row["preferred_hour"]) <= 23 and 0 <= float(row["responsiveness"]) <= 1
        assert int(row["n_devices"]) >= 1
        assert row["consent_status"] in ("opt_in", "opt_out", "none")
        assert row["has_crm_contact"] in ("true", "false") and row["is_cart_abandoner"] in ("true", "false")
    assert {row["jurisdiction"] for row in truth} == jurisdictions
    us_zones = {row["timezone"] for row in truth if row["country"] == "US"}
    ca_zones = {row["timezone"] for row in truth if row["country"] == "CA"}
    assert len(us_zones) >= 3 and len(ca_zones) >= 2


def test_every_timezone_written_is_a_valid_iana_name(sample):
    zones = {zone.lower(): zone for zone in available_timezones()}
    context_zones = {r["context"]["timezone"] for _, _, r in sample.clean("cdp") if "context" in r}
    assert context_zones and all(ZoneInfo(zone) for zone in context_zones)
    crm_zones = [dict(zip(CRM_HEADER, v))["hs_timezone"] for _, _, v in sample.crm if len(v) == len(CRM_HEADER)]
    hubspot_style = [zone for zone in crm_zones if "_slash_" in zone]
    assert hubspot_style and any("/" in zone for zone in crm_zones)
    for zone in filter(None, crm_zones):
        assert zone.replace("_slash_", "/").lower() in zones, zone


def test_activity_falls_in_the_180_days_before_as_of(sample):
    for _, _, record in sample.clean("cdp"):
        assert WINDOW_START <= _utc(record["timestamp"]) < WINDOW_END
    for _, _, record in sample.clean("esp"):
        assert WINDOW_START.timestamp() <= record["timestamp"] < WINDOW_END.timestamp()
    for _, _, record in sample.clean("consent"):
        assert WINDOW_START <= _utc(record["occurred_at"]) < WINDOW_END
    assert any("+" in r["occurred_at"][19:] or "-" in r["occurred_at"][19:] for _, _, r in sample.clean("consent"))


def _product_events(sample: Sample):
    """(userId, category) for every identified product event: views, adds and ordered products."""
    for _, _, record in sample.clean("cdp"):
        if record["type"] != "track" or "userId" not in record:
            continue
        properties = record["properties"]
        if record["event"] in ("Product Viewed", "Product Added"):
            yield record["userId"], properties["category"]
        elif record["event"] == "Order Completed":
            for product in properties["products"]:
                yield record["userId"], product["category"]


def test_favourite_categories_dominate_each_customers_product_events(sample):
    per_user = defaultdict(Counter)
    for user, category in _product_events(sample):
        per_user[user][category] += 1
    in_top3 = total = top1_wins = eligible = 0
    for user, counts in per_user.items():
        favourites = sample.by_user[user]["favourite_categories"].split("|")
        in_top3 += sum(counts[c] for c in favourites)
        total += sum(counts.values())
        if sum(counts.values()) >= 8:
            eligible += 1
            top1_wins += counts.most_common(1)[0][0] in favourites
    # Without preferences both shares would be about 0.3 (three of ten categories); seeds 5-12 give
    # 0.68-0.73 and 0.78-0.92 at this size, so the thresholds leave room for sampling noise.
    assert total > 1000
    assert in_top3 / total > 0.6
    assert eligible >= 20 and top1_wins / eligible > 0.65


def test_identity_is_messy_the_way_real_cdp_data_is(sample):
    events = [r for _, _, r in sample.clean("cdp")]
    users_per_anonymous_id = defaultdict(set)
    devices_per_user = defaultdict(set)
    for record in events:
        if record.get("userId") and record.get("anonymousId"):
            users_per_anonymous_id[record["anonymousId"]].add(record["userId"])
            devices_per_user[record["userId"]].add(record["anonymousId"])
        if record["type"] == "alias":
            devices_per_user[record["userId"]].add(record["previousId"])
    # Anonymous browsing before login
    anonymous = [r for r in events if "userId" not in r]
    assert anonymous and all(r["type"] == "page" or r.get("event") == "Product Viewed" for r in anonymous)
    identified_ids = {aid for aid in users_per_anonymous_id}
    assert {r["anonymousId"] for r in anonymous} <= identified_ids  # every device logs in eventually
    # Several devices, device types, shared devices
    assert {r["context"]["device"]["type"] for r in events} == {"mobile", "desktop", "tablet"}
    shared = {aid: users for aid, users in users_per_anonymous_id.items() if len(users) > 1}
    assert shared and all(2 <= len(users) <= 5 for users in shared.values())
    for user, row in sample.by_user.items():
        assert len(devices_per_user[user]) == int(row["n_devices"]), user
    assert any(int(row["n_devices"]) >= 2 for row in sample.truth)
    # Alias events link an anonymousId seen in the events to a userId
    aliases = [r for r in events if r["type"] == "alias"]
    assert aliases and all(r["previousId"] in identified_ids for r in aliases)
    # Emails: mixed case and stray spaces that normalize to the customer's email; placeholders shared
    emails = [(r["userId"], r["traits"]["email"]) for r in events if r["type"] == "identify" and "email" in r["traits"]]
    messy = [(u, e) for u, e in emails if e != e.strip().lower()]
    assert messy and any(e != e.strip() for _, e in messy)
    placeholder_users = defaultdict(set)
    for user, email in emails:
        if email == email.strip().lower() and not email.startswith(("test@", "none@", "noemail@")) and email != "null":
            assert email == sample.by_user[user]["email"]
        elif email.strip().lower() == sample.by_user[user]["email"]:
            continue
        else:
            placeholder_users[email].add(user)
    assert placeholder_users and max(len(users) for users in placeholder_users.values()) >= 2


def test_each_signup_sends_one_signed_up_event_and_most_give_a_birthday(sample):
    events = [r for _, _, r in sample.clean("cdp")]
    signed_up = [r for r in events if r.get("event") == "Signed Up"]
    by_user = Counter(r["userId"] for r in signed_up)
    signups = {row["user_id"]: row["signup_at"] for row in sample.truth if row["signup_at"]}
    assert set(by_user) == set(signups) and set(by_user.values()) == {1}
    assert len({r["messageId"] for r in signed_up}) == len(signed_up)
    first_identify = {}
    for record in events:
        if record["type"] == "identify" and record["userId"] not in first_identify:
            first_identify[record["userId"]] = record
    for record in signed_up:
        identify = first_identify[record["userId"]]
        assert identify["timestamp"] == signups[record["userId"]]
        assert identify["timestamp"] < record["timestamp"] < _after(identify["timestamp"], seconds=1)
        assert record["anonymousId"] == identify["anonymousId"] and record["properties"]["method"]
    birthdays = {user: r["traits"]["birthday"] for user, r in first_identify.items() if "birthday" in r["traits"]}
    assert 0.5 <= len(birthdays) / len(first_identify) <= 0.7
    for birthday in birthdays.values():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", birthday)
        assert 18 <= AS_OF.year - date.fromisoformat(birthday).year <= 75
    # Only the signup carries it (later identifies refresh other traits).
    assert all("birthday" not in r["traits"] for r in events if r["type"] == "identify" and r not in
               first_identify.values())


def _after(timestamp: str, seconds: int) -> str:
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_phones_come_in_many_national_formats_of_one_number(sample):
    written = defaultdict(set)
    for _, _, record in sample.clean("cdp"):
        if record["type"] == "identify" and "phone" in record.get("traits", {}):
            written[record["userId"]].add(record["traits"]["phone"])
    crm = [dict(zip(CRM_HEADER, v)) for _, _, v in sample.crm if len(v) == len(CRM_HEADER)]
    for row in crm:
        if row["user_id"] and row["phone"]:
            written[row["user_id"]].add(row["phone"])
    assert len(written) > 50
    shapes = Counter()
    for user, numbers in written.items():
        truth = sample.by_user[user]
        for number in numbers:
            parsed = phonenumbers.parse(number, truth["country"])
            assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == truth["phone_e164"]
            shapes[re.sub(r"\d", "9", number)[:6]] += 1
    assert any(len(numbers) > 1 for numbers in written.values())
    assert len(shapes) >= 15  # '(999) ', '+44 99', '+1-999', '0049 9', '099 99', ...
    e164 = [row["phone_e164"] for row in sample.truth if row["phone_e164"]]
    assert len(e164) == len(set(e164))


def test_crm_export_looks_like_a_hubspot_export(sample):
    assert sample.crm_header == CRM_HEADER
    rows = [dict(zip(CRM_HEADER, v)) for f, n, v in sample.crm if ("crm", f, n) not in sample.dirty]
    truth_emails = set(sample.by_email)
    with_contact = [row for row in sample.truth if row["has_crm_contact"] == "true"]
    assert 0.6 < len(with_contact) / CUSTOMERS < 0.8
    assert {row["hs_object_id"] for row in with_contact} <= {row["hs_object_id"] for row in rows}
    assert any(not row["user_id"] for row in rows if row["email"] in truth_emails)  # join on email/phone
    assert any(row["crm_email"] != row["email"] for row in with_contact)  # a second email in the CRM
    leads = [row for row in rows if row["email"] not in truth_emails and not row["user_id"]
             and row["email"] not in {t["crm_email"] for t in with_contact}]
    assert leads  # CRM-only leads
    versions = defaultdict(list)
    for row in rows:
        versions[row["hs_object_id"]].append(row)
    repeated = [v for v in versions.values() if len(v) > 1]
    assert repeated
    for contact in repeated:
        modified = [_utc(row["lastmodifieddate"]) for row in contact]
        assert modified == sorted(modified) and len(set(modified)) == len(modified)
    assert {row["country"].upper() for row in rows} <= {t["country"] for t in sample.truth} | {
        "US", "CA", "GB", "DE", "FR", "NL", "ES", "IT", "IE", "SE", "PL", "BE", "AT", "PT", "DK", "FI"}
    assert {row["lifecyclestage"] for row in rows} <= {
        "subscriber", "lead", "marketingqualifiedlead", "opportunity", "customer", "evangelist", "other"}


def test_consent_follows_each_jurisdictions_rules_and_matches_truth(sample):
    email_events = [r for _, _, r in sample.clean("consent") if r["channel"] == "email"]
    last_status = {}
    users_with_events = set()
    for record in email_events:
        user = record.get("user_id") or sample.by_email[record["email"].strip().lower()]["user_id"]
        truth = sample.by_user[user]
        assert record["jurisdiction"] == truth["jurisdiction"]
        users_with_events.add(user)
        if record["status"] == "opt_in":
            basis = record["lawful_basis"]
            if truth["jurisdiction"] in ("EU", "UK"):
                assert basis == "consent"
            elif truth["jurisdiction"] == "US":
                assert basis in ("consent", "legitimate_interest")
            else:
                assert basis in ("consent", "implied")
                if basis == "implied":
                    assert record["source"] in ("checkout", "support")
        if record["source"] == "unsubscribe_link":
            assert "user_id" not in record and record["status"] == "opt_out"
        last_status[user] = record["status"]
    for row in sample.truth:
        assert row["consent_status"] == last_status.get(row["user_id"], "none")
    statuses = Counter(row["consent_status"] for row in sample.truth)
    assert statuses["opt_in"] > statuses["opt_out"] > 0 and statuses["none"] > 0
    keyed = Counter(("user_id" in r, "email" in r) for r in email_events)
    assert keyed[(True, False)] and keyed[(False, True)] and keyed[(True, True)]


def test_cart_abandoners_in_truth_are_exactly_those_with_a_recent_unfinished_cart(sample):
    last_add, orders = {}, defaultdict(list)
    for _, _, record in sample.clean("cdp"):
        if record["type"] != "track" or "userId" not in record:
            continue
        moment = _utc(record["timestamp"])
        if record["event"] == "Product Added":
            last_add[record["userId"]] = max(moment, last_add.get(record["userId"], moment))
        elif record["event"] == "Order Completed":
            orders[record["userId"]].append(moment)
    recent = WINDOW_END - timedelta(days=14)
    abandoners = 0
    for row in sample.truth:
        added = last_add.get(row["user_id"])
        expected = added is not None and added >= recent and not any(o > added for o in orders[row["user_id"]])
        assert (row["is_cart_abandoner"] == "true") == expected, row["user_id"]
        abandoners += expected
    assert 0.05 < abandoners / CUSTOMERS < 0.25
    assert sum(int(row["n_orders"]) for row in sample.truth) == sum(len(v) for v in orders.values()) > 0


def test_order_events_use_catalog_products_and_prices(sample):
    catalog = {v[0]: v for _, _, v in sample.catalog}
    assert 200 <= len(catalog) <= 500 and len({v[2] for v in catalog.values()}) == 10
    assert any(v[5] == "false" for _, _, v in sample.catalog)
    active = {pid for pid, v in catalog.items() if all(r[5] == "true" for _, _, r in sample.catalog if r[0] == pid)}
    for _, _, record in sample.clean("cdp"):
        if record.get("event") == "Order Completed":
            products = record["properties"]["products"]
            assert record["properties"]["order_id"] and products
            revenue = sum(p["price"] * p["quantity"] for p in products)
            assert record["properties"]["revenue"] == pytest.approx(revenue)
            for product in products:
                row = catalog[product["product_id"]]
                assert product["product_id"] in active
                assert (product["category"], f"{product['price']:.2f}") == (row[2], row[3])
        if record.get("event") == "Product Added":
            assert record["properties"]["cart_id"]


def test_catalog_links_every_product_to_its_page_on_the_shop(sample):
    assert sample.catalog_header[-1] == "url"
    urls = {}
    for _, _, row in sample.catalog:
        url = row[sample.catalog_header.index("url")]
        assert url == f"https://shop.example.com/p/{row[0]}"
        urls[row[0]] = url
    # The product pages customers browse are the pages the catalog (and so the emails) link to.
    viewed = [r["properties"] for _, _, r in sample.clean("cdp")
              if r.get("type") == "page" and r.get("name") == "Product"]
    assert viewed and all(props["url"] in urls.values() for props in viewed)
    clicked = [r["url"] for _, _, r in sample.clean("esp") if r["event"] == "click"]
    assert clicked and all(url.split("?")[0] in urls.values() for url in clicked)


def test_esp_history_reflects_preferred_hour_and_responsiveness(sample):
    events = [r for _, _, r in sample.clean("esp")]
    assert {r["event"] for r in events} >= {"processed", "delivered", "open", "click", "bounce", "unsubscribe"}
    assert all(r["email"] in sample.by_email for r in events)
    assert all(r.get("mailroom_message_id") and r.get("campaign_id") and r.get("variant_id") for r in events)
    hard = [r for r in events if r["event"] == "bounce" and r.get("type") == "bounce"]
    assert hard and all(sample.by_email[r["email"]]["hard_bounced"] == "true" for r in hard)
    machine = [r for r in events if r["event"] == "open" and r.get("sg_machine_open") is True]
    assert machine and all(r["useragent"] == "Mozilla/5.0" for r in machine)
    assert all(r["url"].startswith("https://") for r in events if r["event"] == "click")

    near = human = 0
    opens, delivered = Counter(), Counter()
    for record in events:
        truth = sample.by_email[record["email"]]
        if record["event"] == "delivered":
            delivered[record["email"]] += 1
        if record["event"] == "open" and record.get("sg_machine_open") is False:
            opens[record["email"]] += 1
            local = datetime.fromtimestamp(record["timestamp"], ZoneInfo(truth["timezone"]))
            distance = abs(local.hour - int(truth["preferred_hour"])) % 24
            near += min(distance, 24 - distance) <= 1
            human += 1
    assert human > 100 and near / human > 0.5  # 3 of 24 hours: 0.125 without a preferred hour
    ranked = sorted(delivered, key=lambda email: float(sample.by_email[email]["responsiveness"]))
    third = len(ranked) // 3

    def rate(emails):
        return sum(opens[e] for e in emails) / sum(delivered[e] for e in emails)

    assert rate(ranked[-third:]) > 2 * rate(ranked[:third])


def test_esp_history_explores_send_hours_and_follows_the_reading_curve(sample):
    """STO's ground truth: past sends cover the daytime hours, and a message delivered when the
    customer's attention (truth/engagement.csv) is high is opened within a day far more often."""
    with open(sample.landing / "truth" / "engagement.csv", newline="", encoding="utf-8") as handle:
        engagement = {row["email"]: row for row in csv.DictReader(handle)}
    assert list(engagement) == [row["email"] for row in sample.truth]
    for row in engagement.values():
        attention = {hour: float(row[f"attention_{hour:02d}"]) for hour in range(8, 21)}
        assert int(row["best_delivery_hour"]) == max(attention, key=lambda hour: (attention[hour], -hour))

    events = [r for _, _, r in sample.clean("esp")]
    delivered, opened = {}, set()
    for record in events:
        if record["event"] == "delivered":
            delivered[record["sg_message_id"]] = record
    for record in events:
        sent = delivered.get(record["sg_message_id"])
        if record["event"] == "open" and record.get("sg_machine_open") is False and sent is not None \
                and record["timestamp"] - sent["timestamp"] <= 24 * 3600:
            opened.add(record["sg_message_id"])
    by_attention, hours = [], Counter()
    for message_id, record in delivered.items():
        truth = engagement[record["email"]]
        local = datetime.fromtimestamp(record["timestamp"], ZoneInfo(truth["timezone"]))
        if 8 <= local.hour <= 20 and local.weekday() < 5:
            hours[local.hour] += 1
            by_attention.append((float(truth[f"attention_{local.hour:02d}"]), message_id in opened))
    assert set(hours) == set(range(8, 21)) and min(hours.values()) >= 10  # every daytime hour was tried
    by_attention.sort()
    third = len(by_attention) // 3

    def rate(rows):
        return sum(opened for _, opened in rows) / len(rows)

    assert rate(by_attention[-third:]) > 1.5 * rate(by_attention[:third])


# ---------------------------------------------------------------------------------------------
# CLI and streaming
# ---------------------------------------------------------------------------------------------


def test_cli_writes_the_files_and_prints_a_one_line_summary(tmp_path):
    out = tmp_path / "landing"
    result = subprocess.run(
        [sys.executable, "-m", "dagster_project.sample_data", "--customers", "40", "--seed", "3", "--out", str(out),
         "--as-of", "2026-11-01", "--events-per-file", "100", "--gzip"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "40 customers" in lines[0] and "CDP events" in lines[0]
    assert (out / "cdp" / "events-00000.jsonl.gz").exists() and (out / "esp" / "events-00000.jsonl.gz").exists()
    for relative in ("crm/contacts.csv", "consent/consent-events.jsonl", "catalog/products.csv",
                     "truth/customers.csv", "truth/dirty_rows.jsonl", "truth/summary.json"):
        assert (out / relative).exists(), relative
    assert not list(out.rglob(".*.partial"))
    bad = subprocess.run([sys.executable, "-m", "dagster_project.sample_data", "--customers", "0", "--seed", "1",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "customers" in bad.stderr


def _peak_bytes(out: Path, customers: int) -> int:
    tracemalloc.start()
    try:
        generate(out_dir=out, customers=customers, seed=SEED, as_of=AS_OF)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_customers(tmp_path):
    # Four times the customers (about 25,000 more lines) may only add bounded caches (UTC offsets per
    # zone and day), never anything per line or per customer.
    small = _peak_bytes(tmp_path / "small", 150)
    large = _peak_bytes(tmp_path / "large", 600)
    assert large < small * 1.3 + 2_000_000, (small, large)

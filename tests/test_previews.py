"""Campaign previews (dagster_project/personalization/previews.py) and what the messages asset shows
of them: on the sample data after the campaign runs (DuckDB and PostgreSQL) a preview per segment and
variant is a real customer's message as stored, the index lists them without an address, and a re-run
leaves every file as it was; hostile keys make safe, distinct file names; the metadata is tables and
numbers the UI can show."""

from __future__ import annotations

import re
import stat
from collections import Counter
from dataclasses import replace
from datetime import datetime

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dagster_project.defs.personalization.metadata import (
    PREVIEW_TEXT_CHARS,
    content_metadata,
    messages_metadata,
    previews_metadata,
)
from dagster_project.personalization.content import ContentUnit, WrittenContent
from dagster_project.personalization.content_step import ContentReport, ContentUnitRecord
from dagster_project.personalization.messages_step import MessagesReport
from dagster_project.personalization.ops_tables import bulk_insert, ensure_ops_tables
from dagster_project.personalization.previews import (
    INDEX,
    PREVIEW_FILE,
    SAFE_NAME,
    UNSUBSCRIBE_TOKEN,
    Preview,
    disarm_unsubscribe,
    preview_stem,
    receiver_base_url,
    safe_name,
    write_campaign_previews,
)
from dagster_project.settings import load_settings
from dagster_project.warehouse import Warehouse

ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def snapshot(folder) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.iterdir())}


def test_a_preview_per_segment_and_variant_is_a_real_customers_message(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        [(run_key,)] = conn.fetchall(
            "select distinct run_key from ops.campaign_messages where campaign_id = 'weekly_picks'")
        messages = conn.fetchall(
            "select segment_key, variant_id, customer_id, to_email, subject, preheader, html_body, text_body "
            "from ops.campaign_messages where campaign_id = 'weekly_picks' and run_key = ?", [run_key])
    first = {}  # (segment, variant) -> the message of its lowest customer id, in code point order
    for row in sorted(messages, key=lambda r: r[2]):
        first.setdefault((row[0], row[1]), row)

    audience = "marts.campaign_weekly_picks"  # the campaign's audience model
    previews = write_campaign_previews(warehouse, "weekly_picks", run_key, settings.previews_dir, audience)

    folder = settings.previews_dir / "weekly_picks"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {0o600}  # a person's message
    assert len(first) > 2 and {(p.segment_key, p.variant_id) for p in previews} == set(first)
    assert len({p.html_path for p in previews}) == len(previews)  # no two pairs share a file
    for preview in previews:
        segment, variant, customer, _, subject, preheader, html, text = first[(preview.segment_key, preview.variant_id)]
        assert preview.customer_id == customer and preview.html_path.parent == folder
        assert PREVIEW_FILE.fullmatch(preview.html_path.name)
        # The message as sent, byte for byte, but for the recipient's unsubscribe token.
        assert "token=" in html and "preview-token-left-out" not in html
        shown = preview.html_path.read_text(encoding="utf-8")
        assert shown == disarm_unsubscribe(html) and "token=preview-token-left-out" in shown
        assert UNSUBSCRIBE_TOKEN.sub("", shown) == UNSUBSCRIBE_TOKEN.sub("", html)
        assert preview.text_path.read_text(encoding="utf-8") == disarm_unsubscribe(text) and preview.text == text
        assert (preview.subject, preview.preheader) == (subject.strip(), preheader.strip())
        # Kept for good in Dagster's metadata, the text names neither the recipient nor their address.
        [first_name] = [value for label, value in preview.personal if label == "first name"]
        assert f"Hi {first_name}" in text and first_name not in preview.redacted_text()
        assert "Hi [first name]" in preview.redacted_text()
    index = (folder / INDEX).read_text(encoding="utf-8")
    for preview in previews:
        assert f'href="{preview.html_path.name}"' in index and f'href="{preview.text_path.name}"' in index
        assert preview.customer_id in index
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [INDEX] + [p.html_path.name for p in previews] + [p.text_path.name for p in previews])
    # No address of any recipient in the index, only a masked one.
    assert ADDRESS.findall(index) == [] and not any(row[3] in index for row in messages)
    assert "***@" in index

    before = snapshot(folder)
    assert write_campaign_previews(warehouse, "weekly_picks", run_key, settings.previews_dir, audience) == previews
    assert snapshot(folder) == before  # same bytes, and not even rewritten


def seed(warehouse: Warehouse, rows: list[tuple[str, str, str, str]], campaign: str = "weekly",
         run: str = "r1") -> None:
    """Messages (segment, variant, customer, to_email) of one campaign run, with recognisable bodies."""
    with warehouse.connect() as conn:
        ensure_ops_tables(conn)
        bulk_insert(conn, "ops.campaign_messages", [
            (f"m-{campaign}-{run}-{customer}", campaign, run, customer, variant, segment, "k", email,
             f"Subject for {customer}", "", f"<p>html of {customer}</p>", f"text of {customer} ?token=abc_DEF-123",
             "{}", datetime(2026, 11, 1), datetime(2026, 11, 1))
            for segment, variant, customer, email in rows])


HOSTILE_KEYS = [("active:apparel", "a"), ("../../etc", "b"), ("A", "a"), ("a", "a"), ("x__y", "z"), ("x", "y__z"),
                ("/abs/olute", "a"), ("seg ment", "a/../b"), ("", "a"), (".", "..")]


def test_hostile_keys_make_safe_distinct_names_and_byte_order_picks_the_sample(warehouse, tmp_path):
    tmp_path = tmp_path / "previews"  # beside the warehouse's data directory
    rows = [(segment, variant, f"c{i}", f"person{i}@example.com") for i, (segment, variant) in enumerate(HOSTILE_KEYS)]
    # Byte order, on both engines: "B" sorts before "a" (a language collation says otherwise).
    rows += [("active:apparel", "a", "a-later", "later@example.com"), ("active:apparel", "a", "B-first", "b@x.org")]
    seed(warehouse, rows)
    if warehouse.kind == "postgres":  # as on a server whose default collation is a language's, e.g. en_US.UTF-8
        with warehouse.connect() as conn:
            if conn.scalar("select count(*) from pg_collation where collname = 'en-x-icu'"):
                conn.execute('alter table ops.campaign_messages alter column customer_id '
                             'type varchar collate "en-x-icu"')
    previews = write_campaign_previews(warehouse, "weekly", "r1", tmp_path)
    assert len(previews) == len(HOSTILE_KEYS) == len({p.html_path.name for p in previews})
    picked = {(p.segment_key, p.variant_id): p for p in previews}
    assert picked[("active:apparel", "a")].customer_id == "B-first"
    for preview in previews:
        assert preview.html_path.parent == tmp_path / "weekly" and PREVIEW_FILE.fullmatch(preview.html_path.name)
        assert preview.html_path.read_text() == f"<p>html of {preview.customer_id}</p>"
    assert picked[("a", "a")].html_path.name == "a__a.html"  # a safe key is its own name
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["weekly", INDEX] + [p.html_path.name for p in previews] + [p.text_path.name for p in previews])


def test_previews_of_pairs_gone_from_the_run_are_removed_and_an_empty_run_says_so(warehouse, tmp_path):
    tmp_path = tmp_path / "previews"
    seed(warehouse, [("s1", "a", "c1", "a@example.com"), ("s2", "a", "c2", "b@example.com")], run="r1")
    seed(warehouse, [("s1", "a", "c3", "c@example.com")], run="r2")
    assert len(write_campaign_previews(warehouse, "weekly", "r1", tmp_path)) == 2
    (tmp_path / "weekly" / "notes.md").write_text("someone's notes")  # not ours: left alone
    (tmp_path / "weekly" / "notes.txt").write_text("someone's notes")
    [preview] = write_campaign_previews(warehouse, "weekly", "r2", tmp_path)
    assert preview.customer_id == "c3"
    assert sorted(p.name for p in (tmp_path / "weekly").iterdir()) == [
        INDEX, "notes.md", "notes.txt", "s1__a.html", "s1__a.txt"]
    assert write_campaign_previews(warehouse, "weekly", "no-such-run", tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "weekly").iterdir()) == [INDEX, "notes.md", "notes.txt"]
    assert "nothing to preview" in (tmp_path / "weekly" / INDEX).read_text()


@hypothesis_settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_any_two_keys_get_safe_names_and_different_keys_different_names(one, other):
    for key in (one, other):
        name = safe_name(key)
        assert SAFE_NAME.fullmatch(name) and "__" not in name and len(name) <= 71
    if one != other:
        assert safe_name(one) != safe_name(other)
        assert preview_stem(one, "a") != preview_stem(other, "a")


def test_the_previews_directory_is_a_setting(tmp_path, monkeypatch):
    assert load_settings({"MAILROOM_DATA_DIR": str(tmp_path)}).previews_dir == tmp_path / "previews"
    monkeypatch.chdir(tmp_path)
    assert load_settings({"MAILROOM_PREVIEWS_DIR": "elsewhere"}).previews_dir == tmp_path / "elsewhere"


@pytest.mark.parametrize("unsubscribe_url, base", [
    ("http://127.0.0.1:8025/unsubscribe", "http://127.0.0.1:8025"),
    ("https://mail.shop.example/u/unsubscribe?x=1", "https://mail.shop.example"),
    ("mailto:unsubscribe@shop.example", None), ("", None), ("/unsubscribe", None),
])
def test_the_receivers_address_is_the_unsubscribe_links_origin(unsubscribe_url, base):
    assert receiver_base_url(unsubscribe_url) == base


# --- what the UI shows ----------------------------------------------------------------------------

def sample_previews(tmp_path, count: int, text: str = "Hi Ada,\n\n| a ``` fence |\nUnsubscribe: "
                    "http://127.0.0.1:8025/unsubscribe?token=AbC_d-1") -> list[Preview]:
    return [Preview("weekly_picks", f"active:cat{i}", "b", f"Picks *{i}* | for [you](http://x)", "pre",
                    tmp_path / "weekly_picks" / f"active-cat{i}-0123456789__b.html", text * (1 + i % 3), f"c{i}",
                    (("first name", "Ada"), ("address", "ada@example.com")))
            for i in range(count)]


def test_previews_metadata_links_every_preview_and_keeps_the_text_to_a_few_kb(tmp_path):
    previews = sample_previews(tmp_path, 40)
    metadata = previews_metadata(previews, base_url="http://127.0.0.1:8025/")
    assert metadata["preview_index"] == dg.MetadataValue.path(str(tmp_path / "weekly_picks" / INDEX))
    assert metadata["preview_url"] == dg.MetadataValue.url("http://127.0.0.1:8025/preview/weekly_picks/")
    table = metadata["previews"].value
    assert table.count("](http://127.0.0.1:8025/preview/weekly_picks/active-cat") == 2 * 40  # HTML and text
    assert "Picks \\*3\\* \\| for \\[you\\](http://x)" in table  # data stays text: no bold, no link
    text = metadata["preview_text"].value
    assert len(text) < PREVIEW_TEXT_CHARS + 500 and "more of 40 not shown" in text
    assert "AbC_d-1" not in text and "token=preview-token-left-out" in text  # the sample recipient's token
    assert "Hi Ada," not in text and "Hi [first name]," in text
    assert "````text\n" in text  # a fence longer than the text's own
    without = previews_metadata(previews[:2])
    assert "preview_url" not in without and "http://127.0.0.1:8025/preview" not in without["previews"].value
    assert "`active-cat1-0123456789__b.html`, `active-cat1-0123456789__b.txt`" in without["previews"].value
    assert "not shown" not in without["preview_text"].value
    long = previews_metadata([replace(previews[0], text="word " * 2000)])["preview_text"].value
    assert len(long) < 2000 and "[... cut here; the whole text is in active-cat0-0123456789__b.txt]" in long
    assert previews_metadata([]) == {"previews": dg.MetadataValue.md("No message in this run, so no previews.")}


def all_metadata(tmp_path) -> dict:
    report = MessagesReport(run_key="2026-11-01", candidates=1234, audience=1000, holdout=100, rendered=700,
                            already_rendered=50, suppressed=Counter({"opted_out": 234, "cooldown": 50}),
                            by_variant=Counter({"a": 400, "b": 300}), new_assignments=900, awaiting_winner=100,
                            variant_weights={"a": 0.25, "b": 0.75}, decide_by=datetime(2026, 11, 3))
    unit = ContentUnit(subject="S", preheader="P", headline="H", body_paragraphs=["B"], call_to_action="Go")
    content = ContentReport(units=[
        ContentUnitRecord("active:x", "Active x", "a", 600, "k1", WrittenContent(unit, "openai", "v1", "m", 1000, 200,
                                                                                 0.00123), cached=False),
        ContentUnitRecord("active:x", "Active x", "b", 600, "k2", WrittenContent(unit, "rules", "v1"), cached=True),
    ])
    return {**content_metadata(content), **messages_metadata(report), **previews_metadata(sample_previews(tmp_path, 3))}


def test_counts_stay_numbers_and_breakdowns_are_tables_for_people(tmp_path):
    metadata = all_metadata(tmp_path)
    numbers = {"messages_rendered": 700, "holdout_size": 100, "suppressed": 284, "remainder_awaiting_winner": 100,
               "content_units": 2, "llm_written": 1, "review_queue_size": 0, "messages_in_run": 750}
    for key, value in numbers.items():
        assert metadata[key] == dg.MetadataValue.int(value), key
    assert metadata["llm_cost_usd"] == dg.MetadataValue.float(0.00123)
    assert metadata["run_key"] == dg.MetadataValue.text("2026-11-01")
    assert not any(isinstance(v, dg.JsonMetadataValue) for v in metadata.values())  # no raw JSON
    assert "| opted\\_out | 234 | 19.0% |" in metadata["suppressed_by_reason"].value
    assert "| a | 400 | 57.1% |" in metadata["messages_by_variant"].value
    assert "| b | 75.0% |" in metadata["bandit_variant_shares"].value
    summary = metadata["summary"].value  # the messages summary: where all 1,234 candidates went
    assert "**1,234** candidates" in summary
    assert "| holdout (no message, the experiment's control) | 100 | 8.1% |" in summary
    assert "$0.0012" in metadata["units_by_writer"].value


def test_every_value_survives_a_materialization_as_itself(tmp_path):
    """What the UI shows is what was stored: nothing turns into '(unserializable)'."""
    metadata = all_metadata(tmp_path)

    @dg.asset
    def shown() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=metadata)

    result = dg.materialize([shown], instance=dg.DagsterInstance.ephemeral())
    [event] = result.get_asset_materialization_events()
    stored = event.materialization.metadata
    assert stored == metadata
    assert not any("unserializable" in str(value.value) for value in stored.values())


@pytest.mark.parametrize("count", [0, 1])
def test_a_run_without_messages_has_a_sensible_summary(count):
    report = MessagesReport(run_key="r", candidates=count, suppressed=Counter({"ineligible": count}))
    metadata = messages_metadata(report)
    assert metadata["messages_by_variant"].value == "No message rendered in this pass."
    assert ("Nobody was suppressed." == metadata["suppressed_by_reason"].value) == (count == 0)


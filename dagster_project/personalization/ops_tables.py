"""Operational tables the personalization assets write (schema ops), and how rows get there.

ops.content            one row per content unit (campaign x segment x variant x prompt/model/inputs)
ops.campaign_content   which content unit each (campaign, segment, variant) uses now
ops.llm_calls          every LLM request: endpoint, model, outcome, tokens, cost (never prompt text)
ops.variant_assignments  the sticky variant (or holdout) of each customer per campaign
ops.campaign_messages  one rendered message per customer and campaign run: what activation sends
ops.campaign_suppressions  every candidate of a run who got no message, with the reason
ops.campaign_assignments   every eligible customer of a run who entered its experiment: the arm
                           (variant, holdout, or NULL while the remainder waits for the winner) and phase
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from dagster_project.personalization.content import ContentUnit
from dagster_project.warehouse import Column, Connection, columns

CONTENT = columns(
    "content_key:VARCHAR campaign_id:VARCHAR segment_key:VARCHAR variant_id:VARCHAR writer:VARCHAR "
    "prompt_version:VARCHAR model:VARCHAR subject:VARCHAR preheader:VARCHAR headline:VARCHAR "
    "body_paragraphs:VARCHAR call_to_action:VARCHAR quality_score:FLOAT8 flags:VARCHAR "
    "review_reason:VARCHAR input_tokens:BIGINT output_tokens:BIGINT cost_usd:FLOAT8 reusable:BOOLEAN "
    "created_at:TIMESTAMP"
)
CAMPAIGN_CONTENT = columns(
    "campaign_id:VARCHAR segment_key:VARCHAR variant_id:VARCHAR content_key:VARCHAR updated_at:TIMESTAMP"
)
LLM_CALLS = columns(
    "called_at:TIMESTAMP campaign_id:VARCHAR segment_key:VARCHAR variant_id:VARCHAR endpoint:VARCHAR "
    "model:VARCHAR prompt_version:VARCHAR outcome:VARCHAR input_tokens:BIGINT output_tokens:BIGINT "
    "cost_usd:FLOAT8 seconds:FLOAT8"
)
VARIANT_ASSIGNMENTS = columns(
    "campaign_id:VARCHAR customer_id:VARCHAR variant_id:VARCHAR salt:VARCHAR assigned_at:TIMESTAMP"
)
CAMPAIGN_MESSAGES = columns(
    "message_id:VARCHAR campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR variant_id:VARCHAR "
    "segment_key:VARCHAR content_key:VARCHAR to_email:VARCHAR subject:VARCHAR preheader:VARCHAR "
    "html_body:VARCHAR text_body:VARCHAR headers_json:VARCHAR send_at:TIMESTAMP rendered_at:TIMESTAMP "
    # 'skip' or 'delay' over the frequency cap (a journey's send step; reverse_etl/presend.py); NULL: skip
    "on_frequency_cap:VARCHAR "
    # send_time: optimized (predictive/send_time_plan.py): the customer's arm (fixed | explore | optimized)
    # and the evidence the optimized time came from (customer | segment | global | fixed); NULL otherwise
    "send_time_arm:VARCHAR send_time_source:VARCHAR"
)

CAMPAIGN_SUPPRESSIONS = columns(
    "campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR reason:VARCHAR recorded_at:TIMESTAMP"
)
CAMPAIGN_ASSIGNMENTS = columns(
    "campaign_id:VARCHAR run_key:VARCHAR customer_id:VARCHAR arm:VARCHAR phase:VARCHAR anchor_at:TIMESTAMP "
    "assigned_at:TIMESTAMP recorded_at:TIMESTAMP send_time_arm:VARCHAR send_time_source:VARCHAR"
)

# The unique keys that make a second message (or assignment) for the same customer impossible.
UNIQUE_KEYS = {
    "ops.campaign_messages": [("campaign_id", "run_key", "customer_id"), ("message_id",)],
    "ops.variant_assignments": [("campaign_id", "customer_id")],
    "ops.content": [("content_key",)],
    "ops.campaign_assignments": [("campaign_id", "run_key", "customer_id")],
}

TABLES = {
    "ops.content": CONTENT,
    "ops.campaign_content": CAMPAIGN_CONTENT,
    "ops.llm_calls": LLM_CALLS,
    "ops.variant_assignments": VARIANT_ASSIGNMENTS,
    "ops.campaign_messages": CAMPAIGN_MESSAGES,
    "ops.campaign_suppressions": CAMPAIGN_SUPPRESSIONS,
    "ops.campaign_assignments": CAMPAIGN_ASSIGNMENTS,
}


def ensure_ops_tables(conn: Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
    for table, table_columns in TABLES.items():
        conn.create_table(table, table_columns)
        conn.add_missing_columns(table, table_columns)
        for key in UNIQUE_KEYS.get(table, ()):
            name = f"{table.split('.')[1]}__{'__'.join(key)}"
            conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(key)})")


def bulk_insert(conn: Connection, table: str, rows: Iterable[Sequence]) -> int:
    """Insert rows (in TABLES[table] column order) with one bulk load; returns the row count. A row
    may stop early: the columns after its last value are NULL (a column a later release added)."""
    return insert_rows(conn, table, TABLES[table], rows)


def insert_rows(conn: Connection, table: str, columns: Sequence[Column], rows: Iterable[Sequence]) -> int:
    """bulk_insert for any table with `columns`: one CSV bulk load (floats keep every bit: csv writes repr)."""
    with tempfile.TemporaryDirectory(prefix="mailroom-ops-") as scratch:
        path = Path(scratch) / "rows.csv"
        count = 0
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([c.name for c in columns])
            for row in rows:
                # An empty string would read back as NULL: keep text empty-free (a space is harmless).
                values = ["" if value is None else (value if value != "" else " ") for value in row]
                writer.writerow(values + [""] * (len(columns) - len(values)))
                count += 1
        if count:
            conn.load_csv(table, columns, path)
    return count


def unit_from_row(row) -> ContentUnit:
    """(subject, preheader, headline, body_paragraphs JSON, call_to_action) from ops.content."""
    subject, preheader, headline, body, cta = row
    # bulk_insert stores an empty string as one space (an empty CSV field would read as NULL)
    return ContentUnit(subject=subject.strip(), preheader=preheader.strip(), headline=headline.strip(),
                       body_paragraphs=json.loads(body), call_to_action=cta.strip())

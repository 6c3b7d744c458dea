"""What the UI shows for a journey and each of its steps, read from the ops tables: the state of the
journey now (who is where, who left and why), not only what the last tick changed."""

from __future__ import annotations

from collections import Counter, defaultdict

import dagster as dg

from dagster_project.journeys.spec import Journey
from dagster_project.warehouse import Connection


def journey_metadata(conn: Connection, journey: Journey, steps: dict[str, dict]) -> dict:
    """Entries by status, the goal rate, and a funnel table (reached, waiting, messages, exits per step)."""
    by_status = Counter(dict(conn.fetchall(
        "SELECT status, count(*) FROM ops.journey_state WHERE journey_id = ? GROUP BY status", [journey.journey_id])))
    entries, goals = conn.fetchall("SELECT count(*), count(goal_met_at) FROM ops.journey_entries WHERE journey_id = ?",
                                   [journey.journey_id])[0]
    rows = ["| step | kind | reached | waiting here | messages | accepted | exited here |",
            "|---|---|--:|--:|--:|--:|--:|"]
    for step in journey.steps:
        counts = steps[step.step_id]
        exits = ", ".join(f"{n} {reason}" for reason, n in sorted(counts["exited"].items())) or "0"
        rows.append(f"| {step.step_id} | {step.kind} | {counts['reached']:,} | {counts['waiting']:,} | "
                    f"{counts['messages']:,} | {counts['accepted']:,} | {exits} |")
    return {
        "entries": dg.MetadataValue.int(int(entries)),
        "active": dg.MetadataValue.int(by_status["waiting"]),
        "completed": dg.MetadataValue.int(by_status["completed"]),
        "exited": dg.MetadataValue.int(by_status["exited"]),
        "goal_rate": dg.MetadataValue.float(round(goals / entries, 4) if entries else 0.0),
        "funnel": dg.MetadataValue.md("\n".join(rows)),
    }


def step_metadata(steps: dict[str, dict]) -> dict[str, dict]:
    return {step_id: {
        "reached": dg.MetadataValue.int(counts["reached"]),
        "waiting_here": dg.MetadataValue.int(counts["waiting"]),
        "messages": dg.MetadataValue.int(counts["messages"]),
        "accepted": dg.MetadataValue.int(counts["accepted"]),
        "outcomes": dg.MetadataValue.json(dict(counts["outcomes"])),
        "exited_here": dg.MetadataValue.json(dict(counts["exited"])),
    } for step_id, counts in steps.items()}


def step_counts(conn: Connection, journey: Journey) -> dict[str, dict]:
    counts: dict[str, dict] = defaultdict(lambda: {"reached": 0, "waiting": 0, "messages": 0, "accepted": 0,
                                                   "outcomes": Counter(), "exited": Counter()})
    has_ledger = conn.table_exists("ops", "send_ledger")
    for step_id, outcome, rows, messages, accepted in conn.fetchall(
            "SELECT j.step_id, j.outcome, count(*), count(j.message_id), "
            + ("count(CASE WHEN l.state = 'accepted' THEN 1 END) " if has_ledger else "0 ")
            + "FROM ops.journey_steps AS j "
            + ("LEFT JOIN ops.send_ledger AS l ON l.message_id = j.message_id " if has_ledger else "")
            + "WHERE j.journey_id = ? GROUP BY j.step_id, j.outcome", [journey.journey_id]):
        step = counts[step_id]
        step["reached"] += rows
        step["messages"] += messages
        step["accepted"] += accepted
        step["outcomes"][outcome] += rows
    for step_id, status, reason, rows in conn.fetchall(
            "SELECT step_id, status, exit_reason, count(*) FROM ops.journey_state WHERE journey_id = ? "
            "AND status IN ('waiting', 'exited') GROUP BY step_id, status, exit_reason", [journey.journey_id]):
        if status == "waiting":
            counts[step_id]["waiting"] += rows
        else:
            counts[step_id]["exited"][reason] += rows
    return {step.step_id: counts[step.step_id] for step in journey.steps}

"""How a gate's outcome reads in the Dagster UI: a table of expectations (what each checks, on which
rows, the suite's note, its result), counts the UI can plot, and a few failing keys with PII masked.

Every value is a dg.MetadataValue of plain Python numbers and text; numbers meant for reading carry
thousands separators, numbers meant for plotting stay numbers."""

import re

import dagster as dg

from dagster_project.quality.gates import ExpectationOutcome, GateResult

VOLUME_LABEL = "volume_within_band"


def gate_description(result: GateResult) -> str:
    if blocking := failed_checks(result, blocking=True):
        return "Blocked: " + "; ".join(blocking)
    if warnings := failed_checks(result, blocking=False):
        return "Passed with warnings: " + "; ".join(warnings)
    return f"All {len(result.outcomes):,} expectations passed on {result.rows:,} rows."


def failed_checks(result: GateResult, blocking: bool) -> list[str]:
    """What failed, as people read it ('amount between 0 and 100,000'), critical or not."""
    failed = [_with_condition(o) for o in result.failures if (o.severity == "critical") == blocking]
    volume = result.volume
    if volume and not volume.passed and (volume.band.severity == "critical") == blocking:
        failed.append(f"row volume out of band ({volume.summary})")
    return failed


def gate_metadata(result: GateResult) -> dict[str, dg.MetadataValue]:
    metadata = {
        "rows_validated": dg.MetadataValue.int(int(result.rows)),
        "expectations": dg.MetadataValue.int(len(result.outcomes)),
        "failed_expectations": dg.MetadataValue.int(len(result.failures)),
        "unexpected_rows": dg.MetadataValue.int(sum(int(o.unexpected_count or 0) for o in result.failures)),
        "seconds": dg.MetadataValue.float(round(float(result.seconds), 3)),
        "results": dg.MetadataValue.md(_results_table(result)),
        "suite_file": dg.MetadataValue.path(str(result.suite.path)),
    }
    if result.blocking_failures:
        # The stable identifiers (what alerts and tests match on), each with what it checks.
        metadata["blocking_failures"] = dg.MetadataValue.text(_identified(result, critical=True))
    if result.warnings:
        metadata["warnings"] = dg.MetadataValue.text(_identified(result, critical=False))
    if result.volume:
        metadata["volume"] = dg.MetadataValue.text(result.volume.summary)
        metadata["volume_latest_window_rows"] = dg.MetadataValue.int(int(result.volume.latest_rows))
        if result.volume.ratio is not None:
            metadata["volume_ratio"] = dg.MetadataValue.float(round(float(result.volume.ratio), 3))
    queries = [
        f"-- {_shown_label(o)} ({o.label})\n{o.unexpected_index_query}"
        for o in result.failures if o.unexpected_index_query
    ]
    if queries:
        metadata["failing_rows_queries"] = dg.MetadataValue.md("```sql\n" + "\n\n".join(queries) + "\n```")
    return metadata


def _identified(result: GateResult, critical: bool) -> str:
    """'expect_column_values_to_be_between(amount): amount between 0 and 100,000; volume_within_band'."""
    failed = [f"{o.label}: {_with_condition(o)}" for o in result.failures if (o.severity == "critical") == critical]
    volume = result.volume
    if volume and not volume.passed and (volume.band.severity == "critical") == critical:
        failed.append(VOLUME_LABEL)
    return "; ".join(failed)


RESULTS_HEADER = (
    "| expectation | applies to | note | severity | result | unexpected rows | % of rows checked "
    "| failing rows (keys, PII masked) |"
)


def _results_table(result: GateResult) -> str:
    lines = [RESULTS_HEADER, "|" + "---|" * RESULTS_HEADER.count(" | ") + "---|"]
    for o in result.outcomes:
        verdict = "pass" if o.success else ("error: " + _cell(o.error) if o.error else "**FAIL**")
        lines.append("| " + " | ".join([
            _cell(_shown_label(o)),
            _cell(f"rows where {o.condition}" if o.condition else "all rows"),
            _cell(o.note or ""),
            o.severity,
            verdict,
            f"{o.unexpected_count:,}" if o.unexpected_count is not None else "",
            _percent(o.unexpected_percent),
            "<br>".join(_cell(key) for key in o.failing_keys),
        ]) + " |")
    if result.volume:
        volume = result.volume
        verdict = "pass" if volume.passed else "**FAIL**"
        lines.append(
            f"| row volume within band | all rows | {_cell(volume.summary)} "
            f"| {volume.band.severity} | {verdict} | | | |"
        )
    return "\n".join(lines)


def _shown_label(outcome: ExpectationOutcome) -> str:
    return outcome.display_label or outcome.label


def _with_condition(outcome: ExpectationOutcome) -> str:
    """'prev not null, where event_type is alias' (a label made unique by its condition has it already)."""
    label = _shown_label(outcome)
    return (f"{label}, where {outcome.condition}" if outcome.condition and not label.endswith(outcome.condition)
            else label)


def _percent(value: float | None) -> str:
    """'0%', '<0.01%', '2.5%', '66.67%', '>99.99%', '100%'."""
    if value is None:
        return ""
    if value == 0 or value >= 100:
        return f"{value:,.0f}%"
    if value < 0.01:
        return "<0.01%"
    if value > 99.99:
        return ">99.99%"
    return f"{value:,.2f}".rstrip("0").rstrip(".") + "%"


# Markdown would read these as emphasis, links, HTML or a cell border; a backslash shows them as typed.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>|~])")


def _cell(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", " ".join(str(text).split()))

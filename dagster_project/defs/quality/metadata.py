"""How a gate's outcome reads in the Dagster UI: a table of expectations, counts the UI can plot,
and a few failing keys with PII masked."""

import dagster as dg

from dagster_project.quality.gates import GateResult


def gate_description(result: GateResult) -> str:
    if result.blocking_failures:
        return "Blocked: " + "; ".join(result.blocking_failures)
    if result.warnings:
        return "Passed with warnings: " + "; ".join(result.warnings)
    return f"All {len(result.outcomes)} expectations passed on {result.rows:,} rows."


def gate_metadata(result: GateResult) -> dict:
    metadata = {
        "rows_validated": dg.MetadataValue.int(result.rows),
        "expectations": dg.MetadataValue.int(len(result.outcomes)),
        "failed_expectations": dg.MetadataValue.int(len(result.failures)),
        "unexpected_rows": dg.MetadataValue.int(sum(o.unexpected_count or 0 for o in result.failures)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "results": dg.MetadataValue.md(_results_table(result)),
        "suite_file": dg.MetadataValue.path(str(result.suite.path)),
    }
    if result.blocking_failures:
        metadata["blocking_failures"] = dg.MetadataValue.text(", ".join(result.blocking_failures))
    if result.volume:
        metadata["volume"] = dg.MetadataValue.text(result.volume.summary)
        metadata["volume_latest_window_rows"] = dg.MetadataValue.int(result.volume.latest_rows)
        if result.volume.ratio is not None:
            metadata["volume_ratio"] = dg.MetadataValue.float(round(result.volume.ratio, 3))
    queries = [f"-- {o.label}\n{o.unexpected_index_query}" for o in result.failures if o.unexpected_index_query]
    if queries:
        metadata["failing_rows_queries"] = dg.MetadataValue.md("```sql\n" + "\n\n".join(queries) + "\n```")
    return metadata


def _results_table(result: GateResult) -> str:
    lines = ["| expectation | severity | result | unexpected | % | failing keys (masked) |", "|---|---|---|---|---|---|"]
    for o in result.outcomes:
        verdict = "pass" if o.success else ("error: " + o.error if o.error else "FAIL")
        percent = f"{o.unexpected_percent:.2f}" if o.unexpected_percent is not None else ""
        count = f"{o.unexpected_count:,}" if o.unexpected_count is not None else ""
        keys = "<br>".join(o.failing_keys).replace("|", "\\|")
        lines.append(f"| {o.label} | {o.severity} | {verdict} | {count} | {percent} | {keys} |")
    if result.volume:
        verdict = "pass" if result.volume.passed else "FAIL"
        lines.append(f"| volume_within_band | {result.volume.band.severity} | {verdict} | | | {result.volume.summary} |")
    return "\n".join(lines)

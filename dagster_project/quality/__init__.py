"""Quality gates: GX suites from expectations/ run against the warehouse (no Dagster needed)."""

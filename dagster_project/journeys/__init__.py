"""Journeys: multi-step flows per customer (entry, waits, branches, sends, exits, goal), declared in
dbt next to the campaigns they send. Plain Python; the Dagster definitions will live in defs/journeys."""

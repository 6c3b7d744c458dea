"""Diff-based reverse ETL of sync_crm__* models to a CRM (HubSpot, or a database table).

    relation.py   the model's columns and the SQL hash of each row (same on DuckDB and PostgreSQL)
    plan.py       the diff against the acknowledged snapshot, set-based in the warehouse
    state.py      ops.sync_snapshots, ops.sync_rejections, ops.sync_runs
    pacing.py     rate limit and retries per request
    engine.py     the run: batches, acknowledgements, rejections, the run log
    destinations/ hubspot.py (official client), database.py (SQLAlchemy)
    run.py        sync_model(), the entry point for Dagster, the demo and `python -m reverse_etl.sync`
"""

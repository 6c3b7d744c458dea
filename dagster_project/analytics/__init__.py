"""Analytics: the metrics marts (dbt/models/marts/metrics) read into five self-contained HTML
dashboards (marketing, ops, ML/content, cost, compliance), and the deliverability guards. Plain Python:
the Dagster wiring is in dagster_project/defs/analytics."""

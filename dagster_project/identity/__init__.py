"""Identity resolution helpers that need Python (phone parsing); the graph itself is resolved in dbt."""

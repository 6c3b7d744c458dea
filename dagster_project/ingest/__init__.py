"""Loading landing files into raw.* tables: plain Python, no Dagster (the assets wrap it)."""

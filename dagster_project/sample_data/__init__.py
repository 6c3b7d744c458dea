"""Deterministic, streaming sample data in Mailroom's landing formats (docs/landing-files.md), plus the
latent truth behind every synthetic customer. Plain Python: no Dagster imports.

    from dagster_project.sample_data import generate
    summary = generate(out_dir=Path("data/landing"), customers=2000, seed=42, as_of=date(2026, 11, 1))
"""

from dagster_project.sample_data.generator import generate

__all__ = ["generate"]

"""Failing values shown in the UI are masked: enough to find the row, never the raw PII."""

from __future__ import annotations


def mask_value(value) -> str:
    """'jane.doe@example.com' -> 'j***@example.com'; other text keeps its first character."""
    if value is None:
        return "null"
    text = str(value)
    if "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return f"{text[:1]}***" if len(text) > 1 else "***"


def shown(column: str, value, pii_columns: frozenset[str]) -> str:
    if column in pii_columns:
        return mask_value(value)
    return "null" if value is None else str(value)

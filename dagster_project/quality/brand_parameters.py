"""Suite parameters taken from the brand file, for the gates on rendered messages."""

from __future__ import annotations

import re

from dagster_project.personalization.guardrails import Brand


def brand_parameters(brand: Brand) -> dict:
    return {
        "postal_address_regex": re.escape(brand.postal_address),
        "subject_max_length": brand.subject_max_length,
    }

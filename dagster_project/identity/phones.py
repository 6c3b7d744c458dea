"""Phone numbers to E.164 with Google's libphonenumber rules.

Matching needs one spelling per number: "(415) 555-0132" from a US form and "+1 415-555-0132" from
the CRM must become the same identifier. A national number is read in the record's country when it
has one, else in the configured default region.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers


@dataclass(frozen=True)
class NormalizedPhone:
    raw_phone: str
    country_hint: str | None
    phone_e164: str | None
    invalid_reason: str | None  # why it could not be normalized; None when valid


def normalize_phone(raw_phone: str, country_hint: str | None, default_region: str) -> NormalizedPhone:
    region = (country_hint or "").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = default_region
    try:
        parsed = phonenumbers.parse(raw_phone, region)
    except phonenumbers.NumberParseException as error:
        return NormalizedPhone(raw_phone, country_hint, None, f"unparseable phone: {error}")
    if not phonenumbers.is_valid_number(parsed):
        return NormalizedPhone(raw_phone, country_hint, None, f"invalid phone number for region {region}")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return NormalizedPhone(raw_phone, country_hint, e164, None)


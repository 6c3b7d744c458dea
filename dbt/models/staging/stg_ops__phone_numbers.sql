-- Distinct phone spellings with their E.164 form (normalized in Python by libphonenumber).
select
    raw_phone,
    country_hint,
    phone_e164,
    invalid_reason
from {{ source('ops', 'phone_numbers') }}

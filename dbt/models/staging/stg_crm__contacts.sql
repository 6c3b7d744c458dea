-- One row per CRM contact version (HubSpot-like export), columns renamed to Mailroom's names.
select
    contact_id,
    email,
    first_name,
    last_name,
    phone,
    mobile_phone,
    address,
    city,
    zip as postal_code,
    country,
    timezone as crm_timezone,
    lifecycle_stage,
    user_id,
    coalesce(email_opt_out, false) as is_email_opt_out,
    created_at,
    updated_at,
    source_file,
    loaded_at
from {{ source('raw', 'crm_contacts') }}

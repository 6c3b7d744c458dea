-- The latest version of each CRM contact, with its customer and normalized country, phone and timezone.
with versions as (
    select
        *,
        row_number() over (partition by contact_id order by updated_at desc) as recency
    from {{ ref('stg_crm__contacts') }}
),

phones as (
    select * from {{ ref('stg_ops__phone_numbers') }}
),

timezones as (
    select * from {{ ref('iana_timezones') }}
)

select
    customers.customer_id,
    versions.contact_id,
    nullif(trim(versions.first_name), '') as first_name,
    nullif(trim(versions.last_name), '') as last_name,
    coalesce(phone.phone_e164, mobile.phone_e164) as phone_e164,
    upper(nullif(trim(versions.country), '')) as country_code,
    coalesce(by_name.timezone, by_code.timezone) as timezone,
    lower(versions.lifecycle_stage) as lifecycle_stage,
    versions.created_at,
    versions.updated_at
from versions
join {{ ref('int_identifiers_customers') }} as customers
    on customers.identifier_type = 'crm_contact_id' and customers.identifier_value = versions.contact_id
left join phones as phone
    on phone.raw_phone = versions.phone and phone.country_hint is not distinct from versions.country
left join phones as mobile
    on mobile.raw_phone = versions.mobile_phone and mobile.country_hint is not distinct from versions.country
left join timezones as by_name on by_name.timezone = versions.crm_timezone
left join timezones as by_code on by_code.hubspot_code = lower(versions.crm_timezone)
where versions.recency = 1

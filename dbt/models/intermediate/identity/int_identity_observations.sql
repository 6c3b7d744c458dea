-- Every identifier seen in every record, normalized for matching. A record is one CDP event or one
-- CRM contact version; identifiers in the same record are linked by identity resolution.
-- Invalid phones keep identifier_value null (and their reason) so the audit can show them.
with events as (
    select * from {{ ref('stg_cdp__events') }}
),

contacts as (
    select
        'crm:' || contact_id || ':' || cast(updated_at as varchar) as record_key,
        *
    from {{ ref('stg_crm__contacts') }}
),

phones as (
    select * from {{ ref('stg_ops__phone_numbers') }}
),

cdp_observations as (
    select message_id as record_key, 'user_id' as identifier_type, user_id as raw_value,
        user_id as identifier_value, cast(null as varchar) as invalid_reason, event_at as observed_at
    from events where user_id is not null
    union all
    select message_id, 'anonymous_id', anonymous_id, anonymous_id, null, event_at
    from events where anonymous_id is not null
    union all
    -- Segment alias: previousId (usually the anonymous id) becomes the same person as userId.
    select message_id, 'anonymous_id', previous_id, previous_id, null, event_at
    from events where previous_id is not null
    union all
    select message_id, 'email', email, nullif({{ normalized_email("email") }}, ''), null, event_at
    from events where email is not null
    union all
    select events.message_id, 'phone', events.phone, phones.phone_e164, phones.invalid_reason, events.event_at
    from events
    left join phones
        on phones.raw_phone = events.phone
        and phones.country_hint is not distinct from events.country
    where events.phone is not null
),

crm_phones as (
    select record_key, phone as raw_phone, country, updated_at from contacts where phone is not null
    union all
    select record_key, mobile_phone, country, updated_at from contacts where mobile_phone is not null
),

crm_observations as (
    select record_key, 'crm_contact_id' as identifier_type, contact_id as raw_value,
        contact_id as identifier_value, cast(null as varchar) as invalid_reason, updated_at as observed_at
    from contacts
    union all
    select record_key, 'user_id', user_id, user_id, null, updated_at
    from contacts where user_id is not null
    union all
    select record_key, 'email', email, nullif({{ normalized_email("email") }}, ''), null, updated_at
    from contacts where email is not null
    union all
    select crm_phones.record_key, 'phone', crm_phones.raw_phone, phones.phone_e164, phones.invalid_reason,
        crm_phones.updated_at
    from crm_phones
    left join phones
        on phones.raw_phone = crm_phones.raw_phone
        and phones.country_hint is not distinct from crm_phones.country
)

select 'cdp' as source, * from cdp_observations
union all
select 'crm' as source, * from crm_observations

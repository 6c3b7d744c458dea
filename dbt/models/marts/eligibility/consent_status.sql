-- The latest consent per customer and channel, from consent events (matched by user_id, else email),
-- the email provider's unsubscribe and resubscribe events, and CRM email opt-out flags.
with identifiers as (
    select * from {{ ref('int_identifiers_customers') }}
),

consent_events as (
    select
        coalesce(by_user.customer_id, by_email.customer_id) as customer_id,
        events.channel,
        events.consent_status,
        events.lawful_basis,
        events.capture_source,
        events.occurred_at,
        events.consent_event_id as change_id
    from {{ ref('stg_consent__events') }} as events
    left join identifiers as by_user
        on by_user.identifier_type = 'user_id' and by_user.identifier_value = events.user_id
    left join identifiers as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = {{ normalized_email("events.email") }}
),

provider_changes as (
    select
        identifiers.customer_id,
        'email' as channel,
        case when esp.event_type = 'group_resubscribe' then 'opt_in' else 'opt_out' end as consent_status,
        'consent' as lawful_basis,
        'email_provider_' || esp.event_type as capture_source,
        esp.event_at as occurred_at,
        esp.esp_event_id as change_id
    from {{ ref('stg_esp__events') }} as esp
    join identifiers
        on identifiers.identifier_type = 'email' and identifiers.identifier_value = {{ normalized_email("esp.email") }}
    where esp.event_type in ('unsubscribe', 'group_unsubscribe', 'group_resubscribe')
),

-- A CRM contact flagged as opted out of email (hs_email_optout), as of the version that says so.
crm_opt_outs as (
    select
        identifiers.customer_id,
        'email' as channel,
        'opt_out' as consent_status,
        'consent' as lawful_basis,
        'crm_email_optout' as capture_source,
        min(contacts.updated_at) as occurred_at,
        'crm:' || contacts.contact_id as change_id
    from {{ ref('stg_crm__contacts') }} as contacts
    join identifiers
        on identifiers.identifier_type = 'crm_contact_id' and identifiers.identifier_value = contacts.contact_id
    where contacts.is_email_opt_out
    group by identifiers.customer_id, contacts.contact_id
),

changes as (
    select * from consent_events where customer_id is not null
    union all
    select * from provider_changes
    union all
    select * from crm_opt_outs
),

ranked as (
    select
        *,
        row_number() over (partition by customer_id, channel order by occurred_at desc, change_id desc) as recency
    from changes
)

select
    cast(customer_id as varchar) as customer_id,
    cast(channel as varchar) as channel,
    cast(consent_status as varchar) as consent_status,
    cast(lawful_basis as varchar) as lawful_basis,
    cast(capture_source as varchar) as capture_source,
    cast(occurred_at as timestamp) as changed_at
from ranked
where recency = 1

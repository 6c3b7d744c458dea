-- One row per unsubscribe: the provider's (unsubscribe, group_unsubscribe events) and Mailroom's own
-- one-click links (consent opt-outs recorded by the receiver with source 'unsubscribe_link:<campaign>').
with provider as (
    select
        esp_event_id as unsubscribe_id,
        message_id,
        customer_id,
        campaign_id,
        variant_id,
        content_key,
        'provider_' || event_type as channel,
        event_at as unsubscribed_at
    from {{ ref('int_email_events_attributed') }}
    where event_type in ('unsubscribe', 'group_unsubscribe')
),

identifiers as (
    select * from {{ ref('int_identifiers_customers') }} where identifier_type = 'email'
),

link as (
    select
        consent.consent_event_id as unsubscribe_id,
        cast(null as varchar) as message_id,
        identifiers.customer_id,
        substr(consent.capture_source, length('unsubscribe_link:') + 1) as campaign_id,
        cast(null as varchar) as variant_id,
        cast(null as varchar) as content_key,
        'unsubscribe_link' as channel,
        consent.occurred_at as unsubscribed_at
    from {{ ref('stg_consent__events') }} as consent
    join identifiers on identifiers.identifier_value = {{ normalized_email("consent.email") }}
    where consent.channel = 'email' and consent.consent_status = 'opt_out'
        and consent.capture_source like 'unsubscribe_link:%'
)

select
    cast(unsubscribe_id as varchar) as unsubscribe_id,
    cast(message_id as varchar) as message_id,
    cast(customer_id as varchar) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(content_key as varchar) as content_key,
    cast(channel as varchar) as channel,
    cast(unsubscribed_at as timestamp) as unsubscribed_at
from (select * from provider union all select * from link) as unsubscribes

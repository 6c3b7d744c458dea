-- Email provider events with their customer (matched on the recipient address), local time, and
-- whether an open was made by a machine (Apple Mail Privacy Protection and other prefetchers), which
-- keeps it out of open-based features.
with events as (
    select * from {{ ref('stg_esp__events') }}
),

identifiers as (
    select * from {{ ref('int_identifiers_customers') }} where identifier_type = 'email'
),

customers as (
    select customer_id, timezone from {{ ref('dim_customers') }}
)

select
    identifiers.customer_id,
    events.esp_event_id,
    events.event_type,
    events.provider_message_id,
    events.message_id,
    events.campaign_id,
    events.variant_id,
    events.event_at,
    {{ to_local_time('events.event_at', 'customers.timezone') }} as local_event_at,
    coalesce(events.is_machine_open, false) as is_machine_open,
    events.bounce_type,
    events.clicked_url
from events
join identifiers on identifiers.identifier_value = {{ normalized_email("events.email") }}
join customers on customers.customer_id = identifiers.customer_id

-- One row per 'open' event, attributed to its message, campaign, variant and content unit.
select
    cast(esp_event_id as varchar) as esp_event_id,
    cast(message_id as varchar) as message_id,
    cast(customer_id as varchar) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(content_key as varchar) as content_key,
    cast(is_machine_open as boolean) as is_machine_open,
    cast(event_at as timestamp) as opened_at
from {{ ref('int_email_events_attributed') }}
where event_type = 'open'

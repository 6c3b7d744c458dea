-- One row per 'click' event, attributed to its message, campaign, variant and content unit.
select
    cast(esp_event_id as varchar) as esp_event_id,
    cast(message_id as varchar) as message_id,
    cast(customer_id as varchar) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(content_key as varchar) as content_key,
    cast(clicked_url as varchar) as clicked_url,
    cast(event_at as timestamp) as clicked_at
from {{ ref('int_email_events_attributed') }}
where event_type = 'click'

-- One row per bounce; a hard bounce (bounce_type 'bounce', or none given) suppresses the address in
-- send_eligibility, a soft one ('blocked') does not.
select
    cast(esp_event_id as varchar) as esp_event_id,
    cast(message_id as varchar) as message_id,
    cast(customer_id as varchar) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(content_key as varchar) as content_key,
    cast(coalesce(bounce_type, 'bounce') as varchar) as bounce_type,
    cast(coalesce(bounce_type, 'bounce') = 'bounce' as boolean) as is_hard_bounce,
    cast(event_at as timestamp) as bounced_at
from {{ ref('int_email_events_attributed') }}
where event_type = 'bounce'

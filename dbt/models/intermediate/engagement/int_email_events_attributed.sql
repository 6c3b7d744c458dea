-- Every provider event of a known customer, joined to the message it is about through the message id
-- SendGrid returns in custom_args: campaign, variant, segment and content unit. Events about messages
-- sent before Mailroom (or by another tool) keep the campaign and variant from their own custom_args.
select
    events.esp_event_id,
    events.customer_id,
    events.event_type,
    events.event_at,
    events.local_event_at,
    events.is_machine_open,
    events.bounce_type,
    events.clicked_url,
    events.message_id,
    coalesce(sends.campaign_id, events.campaign_id) as campaign_id,
    coalesce(sends.variant_id, events.variant_id) as variant_id,
    sends.segment_key,
    sends.content_key,
    sends.sent_at
from {{ ref('int_email_events_resolved') }} as events
left join {{ ref('int_email_sends') }} as sends on sends.message_id = events.message_id

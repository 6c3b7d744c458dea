-- One row per email provider event (SendGrid Event Webhook), with Mailroom's custom_args.
select
    sg_event_id as esp_event_id,
    event as event_type,
    email,
    event_at,
    sg_message_id as provider_message_id,
    mailroom_message_id as message_id,
    campaign_id,
    variant_id,
    category,
    url as clicked_url,
    useragent as user_agent,
    is_machine_open,
    bounce_type,
    reason as bounce_reason,
    status as smtp_status,
    bounce_classification,
    source_file,
    loaded_at
from {{ source('raw', 'esp_events') }}

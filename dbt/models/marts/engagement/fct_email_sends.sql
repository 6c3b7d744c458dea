-- One row per message a provider accepted (from the send ledger).
select
    cast(message_id as varchar) as message_id,
    cast(customer_id as varchar) as customer_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(run_key as varchar) as run_key,
    cast(variant_id as varchar) as variant_id,
    cast(segment_key as varchar) as segment_key,
    cast(content_key as varchar) as content_key,
    cast(destination as varchar) as destination,
    cast(provider_message_id as varchar) as provider_message_id,
    cast(sent_at as timestamp) as sent_at
from {{ ref('int_email_sends') }}

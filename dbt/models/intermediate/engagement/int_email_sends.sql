-- Messages a provider accepted, with the segment and content unit they carried.
select
    ledger.message_id,
    ledger.campaign_id,
    ledger.run_key,
    ledger.customer_id,
    ledger.variant_id,
    messages.segment_key,
    messages.content_key,
    ledger.destination,
    ledger.provider_message_id,
    coalesce(ledger.deliver_at, ledger.finished_at) as sent_at,
    ledger.finished_at as accepted_at
from {{ ref('stg_ops__send_ledger') }} as ledger
left join {{ ref('stg_ops__campaign_messages') }} as messages on messages.message_id = ledger.message_id
where ledger.send_state = 'accepted'

-- The send ledger (ops.send_ledger, written by the sends assets): one row per campaign, run and customer.
select
    message_id,
    campaign_id,
    run_key,
    customer_id,
    variant_id,
    state as send_state,
    reason as send_reason,
    destination,
    provider_message_id,
    deliver_at,
    finished_at
from {{ ops_source('send_ledger', {
    'message_id': 'varchar', 'campaign_id': 'varchar', 'run_key': 'varchar', 'customer_id': 'varchar',
    'variant_id': 'varchar', 'state': 'varchar', 'reason': 'varchar', 'destination': 'varchar',
    'provider_message_id': 'varchar', 'deliver_at': 'timestamp', 'finished_at': 'timestamp'}) }} as ledger

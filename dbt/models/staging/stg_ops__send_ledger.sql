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
    attempts,
    is_retryable,
    provider_message_id,
    planned_at,
    sending_at,
    deliver_at,
    finished_at
from {{ ops_source('send_ledger', {
    'message_id': 'varchar', 'campaign_id': 'varchar', 'run_key': 'varchar', 'customer_id': 'varchar',
    'variant_id': 'varchar', 'state': 'varchar', 'reason': 'varchar', 'destination': 'varchar',
    'attempts': 'integer', 'is_retryable': 'boolean', 'provider_message_id': 'varchar', 'planned_at': 'timestamp',
    'sending_at': 'timestamp', 'deliver_at': 'timestamp', 'finished_at': 'timestamp'}) }} as ledger

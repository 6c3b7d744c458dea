-- Candidates of a campaign run who got no message (ops.campaign_suppressions), with the reason.
select
    campaign_id,
    run_key,
    customer_id,
    reason as suppression_reason,
    recorded_at
from {{ ops_source('campaign_suppressions', {
    'campaign_id': 'varchar', 'run_key': 'varchar', 'customer_id': 'varchar', 'reason': 'varchar',
    'recorded_at': 'timestamp'}) }} as suppressions

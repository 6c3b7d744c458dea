-- Every eligible customer of a campaign run who entered its experiment (ops.campaign_assignments,
-- written by the messages assets): the arm, the phase, and when the message was planned to go out;
-- under send_time: optimized also the send-time arm (fixed | explore | optimized) and its evidence.
select
    campaign_id,
    run_key,
    customer_id,
    arm,
    phase,
    anchor_at,
    assigned_at,
    send_time_arm,
    send_time_source
from {{ ops_source('campaign_assignments', {
    'campaign_id': 'varchar', 'run_key': 'varchar', 'customer_id': 'varchar', 'arm': 'varchar',
    'phase': 'varchar', 'anchor_at': 'timestamp', 'assigned_at': 'timestamp', 'send_time_arm': 'varchar',
    'send_time_source': 'varchar'}) }} as assignments

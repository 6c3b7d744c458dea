-- Rendered messages (ops.campaign_messages): which segment and content unit each message carried.
-- Bodies and addresses stay out of the warehouse models.
select
    message_id,
    campaign_id,
    run_key,
    customer_id,
    variant_id,
    segment_key,
    content_key,
    send_at,
    rendered_at
from {{ ops_source('campaign_messages', {
    'message_id': 'varchar', 'campaign_id': 'varchar', 'run_key': 'varchar', 'customer_id': 'varchar',
    'variant_id': 'varchar', 'segment_key': 'varchar', 'content_key': 'varchar', 'send_at': 'timestamp',
    'rendered_at': 'timestamp'}) }} as messages

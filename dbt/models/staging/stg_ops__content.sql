-- Content units (ops.content): who wrote each (an LLM or the rules), its quality score and guardrail
-- flags, and why it waits for review. The copy itself is not read by dbt.
select
    content_key,
    campaign_id,
    segment_key,
    variant_id,
    writer,
    model,
    quality_score,
    flags,
    review_reason,
    input_tokens,
    output_tokens,
    cost_usd,
    created_at
from {{ ops_source('content', {
    'content_key': 'varchar', 'campaign_id': 'varchar', 'segment_key': 'varchar', 'variant_id': 'varchar',
    'writer': 'varchar', 'model': 'varchar', 'quality_score': 'double precision', 'flags': 'varchar',
    'review_reason': 'varchar', 'input_tokens': 'bigint', 'output_tokens': 'bigint',
    'cost_usd': 'double precision', 'created_at': 'timestamp'}) }} as content

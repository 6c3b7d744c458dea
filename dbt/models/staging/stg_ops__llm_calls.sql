-- Every LLM request the content step made (ops.llm_calls): outcome, tokens, cost, seconds; never prompt text.
select
    called_at,
    campaign_id,
    segment_key,
    variant_id,
    endpoint,
    model,
    prompt_version,
    outcome,
    input_tokens,
    output_tokens,
    cost_usd,
    seconds
from {{ ops_source('llm_calls', {
    'called_at': 'timestamp', 'campaign_id': 'varchar', 'segment_key': 'varchar', 'variant_id': 'varchar',
    'endpoint': 'varchar', 'model': 'varchar', 'prompt_version': 'varchar', 'outcome': 'varchar',
    'input_tokens': 'bigint', 'output_tokens': 'bigint', 'cost_usd': 'double precision',
    'seconds': 'double precision'}) }} as calls

-- What writing content cost per day, campaign, segment and variant: LLM requests by outcome, tokens,
-- USD, and request latency percentiles (ops.llm_calls). "guardrails" is a draft the guardrails
-- refused, "budget" a request the daily cost budget stopped; any other outcome but "ok" is an error of
-- the endpoint (timeout, rate limit, server error...).
with calls as (
    select * from {{ ref('stg_ops__llm_calls') }}
)

select
    cast(called_at as date) as called_date,
    cast(campaign_id as varchar) as campaign_id,
    cast(segment_key as varchar) as segment_key,
    cast(variant_id as varchar) as variant_id,
    cast(count(*) as integer) as llm_calls,
    cast(sum(case when outcome = 'ok' then 1 else 0 end) as integer) as ok_calls,
    cast(sum(case when outcome = 'guardrails' then 1 else 0 end) as integer) as guardrail_rejections,
    cast(sum(case when outcome = 'budget' then 1 else 0 end) as integer) as budget_stops,
    cast(sum(case when outcome not in ('ok', 'guardrails', 'budget') then 1 else 0 end) as integer) as api_errors,
    cast(sum(coalesce(input_tokens, 0)) as bigint) as input_tokens,
    cast(sum(coalesce(output_tokens, 0)) as bigint) as output_tokens,
    cast(sum(cast(coalesce(cost_usd, 0) as decimal(18, 6))) as decimal(18, 6)) as cost_usd,
    {{ rate("sum(case when outcome not in ('ok', 'guardrails', 'budget') then 1 else 0 end)", 'count(*)') }}
        as api_error_rate,
    {{ rate("sum(case when outcome = 'guardrails' then 1 else 0 end)", 'count(*)') }} as guardrail_rejection_rate,
    {{ percentile(0.5, 'seconds') }} as latency_p50_seconds,
    {{ percentile(0.95, 'seconds') }} as latency_p95_seconds
from calls
group by cast(called_at as date), campaign_id, segment_key, variant_id

-- Content and its cost per day and campaign: content units written (by an LLM, or by the rules as a
-- fallback after the LLM failed or its draft was refused), personal data redacted from drafts, units
-- waiting for review, their quality score; messages rendered, and LLM spend per rendered email.
-- A unit written by the rules with a review reason is a fallback; without one the rules were the
-- writer configured.
with content as (
    select
        cast(created_at as date) as activity_date,
        campaign_id,
        count(*) as content_units,
        sum(case when writer <> 'rules' then 1 else 0 end) as llm_units,
        sum(case when writer = 'rules' and review_reason is not null then 1 else 0 end) as rule_fallbacks,
        sum(case when flags like '%pii_redacted%' then 1 else 0 end) as pii_redactions,
        sum(case when review_reason is not null then 1 else 0 end) as units_in_review,
        avg(quality_score) as avg_quality_score,
        min(quality_score) as min_quality_score
    from {{ ref('stg_ops__content') }}
    group by cast(created_at as date), campaign_id
),

rendered as (
    select cast(rendered_at as date) as activity_date, campaign_id, count(*) as messages_rendered
    from {{ ref('stg_ops__campaign_messages') }}
    group by cast(rendered_at as date), campaign_id
),

spend as (
    select called_date as activity_date, campaign_id, sum(llm_calls) as llm_calls, sum(cost_usd) as cost_usd
    from {{ ref('metrics_llm_daily') }}
    group by called_date, campaign_id
),

days as (
    select activity_date, campaign_id from content
    union
    select activity_date, campaign_id from rendered
    union
    select activity_date, campaign_id from spend
)

select
    cast(days.activity_date as date) as activity_date,
    cast(days.campaign_id as varchar) as campaign_id,
    cast(coalesce(rendered.messages_rendered, 0) as integer) as messages_rendered,
    cast(coalesce(content.content_units, 0) as integer) as content_units,
    cast(coalesce(content.llm_units, 0) as integer) as llm_units,
    cast(coalesce(content.rule_fallbacks, 0) as integer) as rule_fallbacks,
    cast(coalesce(content.pii_redactions, 0) as integer) as pii_redactions,
    cast(coalesce(content.units_in_review, 0) as integer) as units_in_review,
    -- Rounded: engines may add doubles in different orders.
    cast(round(cast(content.avg_quality_score as decimal(18, 9)), 4) as double precision) as avg_quality_score,
    cast(content.min_quality_score as double precision) as min_quality_score,
    cast(coalesce(spend.llm_calls, 0) as integer) as llm_calls,
    cast(coalesce(spend.cost_usd, 0) as decimal(18, 6)) as cost_usd,
    {{ rate('coalesce(spend.cost_usd, 0)', 'rendered.messages_rendered') }} as cost_per_email_usd
from days
left join content on content.activity_date = days.activity_date and content.campaign_id = days.campaign_id
left join rendered on rendered.activity_date = days.activity_date and rendered.campaign_id = days.campaign_id
left join spend on spend.activity_date = days.activity_date and spend.campaign_id = days.campaign_id

-- One row per scored customer: the probability of a click (if mailed) and of an order in the next 7 days,
-- from the version of each model that serves the customer at its latest scoring cutoff, with the
-- version and the customer's decile among everyone scored (1 = the lowest tenth, 10 = the highest; ties
-- broken by customer_id, so both engines agree). Campaigns filter on it (meta.campaign.audience).
{% set models = {'click_7d': 'click', 'converted_7d': 'convert'} %}
with served as (
    select scores.*
    from {{ ref('stg_ops__propensity_scores') }} as scores
    where scores.is_served
        and scores.cutoff_at = (
            select max(latest.cutoff_at)
            from {{ ref('stg_ops__propensity_scores') }} as latest
            where latest.model_name = scores.model_name
        )
),

ranked as (
    select
        customer_id,
        model_name,
        probability,
        model_version,
        cutoff_at,
        ntile(10) over (partition by model_name order by probability, customer_id) as decile
    from served
)

select
    cast(customer_id as varchar) as customer_id,
    {% for model_name, short in models.items() %}
        cast(max(case when model_name = '{{ model_name }}' then probability end) as double precision)
            as p_{{ short }}_7d,
        cast(max(case when model_name = '{{ model_name }}' then decile end) as integer) as {{ short }}_decile,
        cast(max(case when model_name = '{{ model_name }}' then model_version end) as integer)
            as {{ short }}_model_version,
        cast(max(case when model_name = '{{ model_name }}' then cutoff_at end) as timestamp)
            as {{ short }}_scored_at{{ "," if not loop.last }}
    {% endfor %}
from ranked
group by customer_id

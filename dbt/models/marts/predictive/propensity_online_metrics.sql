-- How each scored propensity model version did online (docs/design/predictive.md, section 6): for every
-- scoring cutoff T whose 7-day window has closed, the AUC of the version's probabilities against what
-- happened in (T, T + 7 d], on two populations:
--   served  the customers this version served (the roll-out compares a canary and the serving version here)
--   all     every scored customer, whichever version served them (both versions on the same people)
-- click_7d counts customers mailed in the window (someone not mailed cannot click); converted_7d counts all.
-- AUC is the Mann-Whitney statistic with average ranks for ties, in integers until the last division, so
-- both engines agree to the last bit: (sum of positives' doubled ranks - n1 (n1 + 1)) / (2 n1 n0).
with scores as (
    select *
    from {{ ref('stg_ops__propensity_scores') }}
    where cutoff_at + interval '7 days' <= {{ as_of_timestamp() }}
),

windows as (
    select distinct cutoff_at from scores
),

email as (
    select
        events.customer_id,
        windows.cutoff_at,
        max(case when events.event_type = 'delivered' then 1 else 0 end) as is_mailed,
        max(case when events.event_type = 'click' then 1 else 0 end) as clicked
    from {{ ref('int_email_events_resolved') }} as events
    join windows
        on events.event_at > windows.cutoff_at and events.event_at <= windows.cutoff_at + interval '7 days'
    where events.customer_id is not null and events.event_type in ('delivered', 'click')
    group by events.customer_id, windows.cutoff_at
),

orders as (
    select distinct
        events.customer_id,
        windows.cutoff_at
    from {{ ref('int_cdp_events_resolved') }} as events
    join windows
        on events.event_at > windows.cutoff_at and events.event_at <= windows.cutoff_at + interval '7 days'
    where events.customer_id is not null and events.event_name = 'Order Completed'
),

outcomes as (
    select
        scores.model_name,
        scores.model_version,
        scores.cutoff_at,
        scores.probability,
        scores.is_served,
        case
            when scores.model_name = 'click_7d' then coalesce(email.clicked, 0)
            else case when orders.customer_id is not null then 1 else 0 end
        end as outcome
    from scores
    left join email on email.customer_id = scores.customer_id and email.cutoff_at = scores.cutoff_at
    left join orders on orders.customer_id = scores.customer_id and orders.cutoff_at = scores.cutoff_at
    where scores.model_name <> 'click_7d' or coalesce(email.is_mailed, 0) = 1
),

populations as (
    select outcomes.*, 'served' as population from outcomes where is_served
    union all
    select outcomes.*, 'all' as population from outcomes
),

ranked as (
    select
        model_name,
        model_version,
        cutoff_at,
        population,
        probability,
        outcome,
        2 * rank() over (partition by model_name, model_version, cutoff_at, population order by probability)
        + count(*) over (partition by model_name, model_version, cutoff_at, population, probability)
        - 1 as doubled_rank
    from populations
),

totals as (
    select
        model_name,
        model_version,
        cutoff_at,
        population,
        count(*) as customers,
        sum(outcome) as positives,
        sum(case when outcome = 1 then doubled_rank else 0 end) as positives_doubled_ranks
    from ranked
    group by model_name, model_version, cutoff_at, population
)

select
    cast(model_name as varchar) as model_name,
    cast(model_version as integer) as model_version,
    cast(cutoff_at as timestamp) as cutoff_at,
    cast(population as varchar) as population,
    cast(customers as bigint) as customers,
    cast(positives as bigint) as positives,
    case
        when positives > 0 and positives < customers
            then cast(positives_doubled_ranks - positives * (positives + 1) as double precision)
            / cast(2 * positives * (customers - positives) as double precision)
    end as auc
from totals

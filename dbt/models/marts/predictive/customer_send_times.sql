-- Each customer's lift over their segment by local hour of day (docs/design/predictive.md, section 3):
-- a customer's twenty-odd deliveries cannot inform 168 slots, so the question is only where they
-- respond more than their segment does at the slots they were mailed. Each delivery expects its
-- segment's rate at its slot (e, in parts per million so sums are exact integers on both engines);
--   level  = (responses + a) / (expected + a)
--   lift(h) = (Y(h) + m * level) / (E(h) + m), Y and E the kernel-smoothed responses and expectations.
-- The score of an instant is segment rate(day, hour) * lift(hour). source says which level a planner
-- should trust: customer (enough own evidence), segment, global, or fixed (too little data anywhere).
{{ config(pre_hook="{{ mailroom.without_nested_loops() }}") }}
{% set reach = var('send_time_kernel_hours') | int %}
with curves as (
    select level_key, local_dow, local_hour, rate, has_enough_evidence
    from {{ ref('send_time_curves') }}
),

global_evidence as (
    select bool_or(has_enough_evidence) as global_has_enough_evidence from curves where level_key = '_all'
),

exposures as (
    {{ settled_send_time_exposures() }}
),

expected as (
    select
        exposures.*,
        cast(floor(curves.rate * 1000000) as bigint) as expected_ppm
    from exposures
    join curves
        on curves.level_key = exposures.segment_key
        and curves.local_dow = exposures.local_dow
        and curves.local_hour = exposures.local_hour
),

customers as (
    select
        expected.customer_id,
        expected.segment_key,
        count(*) as exposures,
        sum(expected.responded) as responses,
        sum(expected.expected_ppm) as expected_ppm,
        bool_or(curves.has_enough_evidence) as segment_has_enough_evidence
    from expected
    left join curves
        on curves.level_key = expected.segment_key and curves.local_dow = 1 and curves.local_hour = 0
    group by expected.customer_id, expected.segment_key
),

spread as (
    -- each delivery lends its response and expectation to the hours within reach, weighted 3, 2, 1
    -- (an equality join below instead of a range join: linear in the deliveries)
    select
        expected.customer_id,
        ((expected.local_hour + hour_offset_series.hour_offset) % 24 + 24) % 24 as local_hour,
        {{ reach }} + 1 - abs(hour_offset_series.hour_offset) as weight,
        case when hour_offset_series.hour_offset = 0 then 1 else 0 end as is_exact,
        expected.responded,
        expected.expected_ppm
    from expected
    cross join {{ integer_series(-reach, reach, 'hour_offset') }}
),

smoothed as (
    select
        customer_id,
        local_hour,
        sum(is_exact) as hour_exposures,
        sum(is_exact * responded) as hour_responses,
        sum(weight * responded) as smoothed_responses,
        sum(weight * expected_ppm) as smoothed_expected_ppm
    from spread
    group by customer_id, local_hour
),

by_hour as (
    select
        customers.customer_id,
        local_hour_series.local_hour,
        coalesce(smoothed.hour_exposures, 0) as hour_exposures,
        coalesce(smoothed.hour_responses, 0) as hour_responses,
        coalesce(smoothed.smoothed_responses, 0) as smoothed_responses,
        coalesce(smoothed.smoothed_expected_ppm, 0) as smoothed_expected_ppm
    from customers
    cross join {{ integer_series(0, 23, 'local_hour') }}
    left join smoothed
        on smoothed.customer_id = customers.customer_id
        and smoothed.local_hour = local_hour_series.local_hour
),

levels as (
    select
        customers.*,
        case
            when customers.exposures >= {{ var('send_time_min_exposures') }}
                and customers.responses >= {{ var('send_time_min_responses') }} then 'customer'
            when customers.segment_has_enough_evidence then 'segment'
            when global_evidence.global_has_enough_evidence then 'global'
            else 'fixed'
        end as source,
        cast((customers.responses + {{ var('send_time_prior_level') }}) * 1000000 as double precision)
        / cast(customers.expected_ppm + {{ var('send_time_prior_level') }} * 1000000 as double precision)
            as response_level
    from customers
    cross join global_evidence
),

lifted as (
    select
        levels.customer_id,
        levels.segment_key,
        levels.source,
        by_hour.local_hour,
        cast(levels.exposures as bigint) as exposures,
        cast(levels.responses as bigint) as responses,
        cast(by_hour.hour_exposures as bigint) as hour_exposures,
        cast(by_hour.hour_responses as bigint) as hour_responses,
        cast(by_hour.smoothed_responses as bigint) as smoothed_responses,
        cast(by_hour.smoothed_expected_ppm as bigint) as smoothed_expected_ppm,
        levels.response_level,
        case
            when levels.source = 'customer'
                then (cast(by_hour.smoothed_responses as double precision) * 1000000
                    + {{ var('send_time_prior_customer') }} * 1000000 * levels.response_level)
                / cast(by_hour.smoothed_expected_ppm + {{ var('send_time_prior_customer') }} * 1000000
                    as double precision)
            else 1.0
        end as lift
    from levels
    join by_hour on by_hour.customer_id = levels.customer_id
),

scored as (
    -- a typical weekday (Wednesday) at the level the source trusts, for analysts and the CRM
    select
        lifted.*,
        case when lifted.source = 'global' then everybody.rate else segment.rate end * lifted.lift as weekday_score
    from lifted
    left join curves as segment
        on segment.level_key = lifted.segment_key and segment.local_dow = 3 and segment.local_hour = lifted.local_hour
    left join curves as everybody
        on everybody.level_key = '_all' and everybody.local_dow = 3 and everybody.local_hour = lifted.local_hour
)

select
    cast(customer_id as varchar) as customer_id,
    cast(segment_key as varchar) as segment_key,
    cast(source as varchar) as source,
    cast(local_hour as integer) as local_hour,
    exposures,
    responses,
    hour_exposures,
    hour_responses,
    smoothed_responses,
    smoothed_expected_ppm,
    cast(response_level as double precision) as response_level,
    cast(lift as double precision) as lift,
    cast(weekday_score as double precision) as weekday_score,
    coalesce(local_hour between 8 and 20 and row_number() over (
        partition by customer_id
        order by case when local_hour between 8 and 20 then 0 else 1 end, weekday_score desc nulls last, local_hour
    ) = 1, false) as is_best_weekday_hour
from scored

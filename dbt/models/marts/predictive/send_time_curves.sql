-- Response rate by local hour of week, for everybody ('_all') and per segment: how mail delivered at
-- that slot did, not when people happened to engage (docs/design/predictive.md, section 3).
-- Exposures and responses are smoothed with a circular kernel (23:00 and 00:00 are neighbours; the same
-- weekday weighs twice, the same kind of day once), then each level is shrunk toward the one above:
--   global  (R + m_g * overall rate) / (N + m_g)
--   segment (R_seg + m_s * global) / (N_seg + m_s)
-- Integers until the last division, so DuckDB and PostgreSQL agree to the last bit.
{% set reach = var('send_time_kernel_hours') | int %}
with exposures as (
    {{ settled_send_time_exposures() }}
),

raw as (
    select
        segment_key as level_key,
        local_dow,
        local_hour,
        count(*) as exposures,
        sum(responded) as responses
    from exposures
    group by segment_key, local_dow, local_hour
    union all
    select
        '_all' as level_key,
        local_dow,
        local_hour,
        count(*) as exposures,
        sum(responded) as responses
    from exposures
    group by local_dow, local_hour
),

level_totals as (
    select
        level_key,
        sum(exposures) as level_exposures,
        sum(responses) as level_responses
    from raw
    group by level_key
),

grid as (
    select
        level_totals.level_key,
        level_totals.level_exposures,
        local_dow_series.local_dow,
        local_hour_series.local_hour
    from level_totals
    cross join {{ integer_series(1, 7, 'local_dow') }}
    cross join {{ integer_series(0, 23, 'local_hour') }}
),

spread as (
    -- each slot lends its counts to the slots within reach: hours weighted 3, 2, 1, the same weekday
    -- twice and the same kind of day (weekday or weekend) once (an equality join below, not a range join)
    select
        raw.level_key,
        target.local_dow,
        ((raw.local_hour + hour_offset_series.hour_offset) % 24 + 24) % 24 as local_hour,
        ({{ reach }} + 1 - abs(hour_offset_series.hour_offset))
        * (case when raw.local_dow = target.local_dow then 2 else 1 end) as weight,
        case when raw.local_dow = target.local_dow and hour_offset_series.hour_offset = 0 then 1 else 0 end
            as is_exact,
        raw.exposures,
        raw.responses
    from raw
    cross join {{ integer_series(-reach, reach, 'hour_offset') }}
    cross join {{ integer_series(1, 7, 'local_dow', 'target') }}
    where raw.local_dow = target.local_dow or (raw.local_dow >= 6) = (target.local_dow >= 6)
),

spread_totals as (
    select
        level_key,
        local_dow,
        local_hour,
        sum(is_exact * exposures) as exposures,
        sum(is_exact * responses) as responses,
        sum(weight * exposures) as smoothed_exposures,
        sum(weight * responses) as smoothed_responses
    from spread
    group by level_key, local_dow, local_hour
),

smoothed as (
    select
        grid.level_key,
        grid.level_exposures,
        grid.local_dow,
        grid.local_hour,
        coalesce(spread_totals.exposures, 0) as exposures,
        coalesce(spread_totals.responses, 0) as responses,
        coalesce(spread_totals.smoothed_exposures, 0) as smoothed_exposures,
        coalesce(spread_totals.smoothed_responses, 0) as smoothed_responses
    from grid
    left join spread_totals
        on spread_totals.level_key = grid.level_key
        and spread_totals.local_dow = grid.local_dow
        and spread_totals.local_hour = grid.local_hour
),

overall as (
    select level_exposures as overall_exposures, level_responses as overall_responses
    from level_totals
    where level_key = '_all'
),

global_curve as (
    -- (R + m * r_all / n_all) / (N + m), written over one common denominator
    select
        smoothed.*,
        cast(
            smoothed.smoothed_responses * overall.overall_exposures
            + {{ var('send_time_prior_global') }} * overall.overall_responses as double precision
        ) / cast(
            (smoothed.smoothed_exposures + {{ var('send_time_prior_global') }}) * overall.overall_exposures
            as double precision
        ) as rate
    from smoothed
    cross join overall
    where smoothed.level_key = '_all'
)

select
    cast(level_key as varchar) as level_key,
    cast('global' as varchar) as level,
    local_dow,
    local_hour,
    cast(level_exposures as bigint) as level_exposures,
    cast(exposures as bigint) as exposures,
    cast(responses as bigint) as responses,
    cast(smoothed_exposures as bigint) as smoothed_exposures,
    cast(smoothed_responses as bigint) as smoothed_responses,
    rate,
    level_exposures >= {{ var('send_time_min_global_exposures') }} as has_enough_evidence
from global_curve
union all
select
    cast(segment.level_key as varchar) as level_key,
    cast('segment' as varchar) as level,
    segment.local_dow,
    segment.local_hour,
    cast(segment.level_exposures as bigint) as level_exposures,
    cast(segment.exposures as bigint) as exposures,
    cast(segment.responses as bigint) as responses,
    cast(segment.smoothed_exposures as bigint) as smoothed_exposures,
    cast(segment.smoothed_responses as bigint) as smoothed_responses,
    (segment.smoothed_responses + {{ var('send_time_prior_segment') }} * global_curve.rate)
    / cast(segment.smoothed_exposures + {{ var('send_time_prior_segment') }} as double precision) as rate,
    segment.level_exposures >= {{ var('send_time_min_segment_exposures') }} as has_enough_evidence
from smoothed as segment
join global_curve
    on global_curve.local_dow = segment.local_dow
    and global_curve.local_hour = segment.local_hour
where segment.level_key <> '_all'

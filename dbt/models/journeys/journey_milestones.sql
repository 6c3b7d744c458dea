-- Milestones journey entries: the customers with a milestone on the as-of date (MAILROOM_AS_OF, or
-- today in UTC), one row per customer and milestone, keyed so each milestone enters once ever:
--   anniversary  'anniversary:<year>'  signed up (dim_customers.created_at) on this month and day,
--                                      at least one year ago
--   birthday     'birthday:<year>'     dim_customers.birth_date on this month and day (customers
--                                      without a valid birthday trait never appear)
--   nth_order    'orders:<N>'          the N-th order (N in var('milestone_order_counts')) placed in
--                                      the 24 hours before the as-of time, so that a daily run at any
--                                      hour, or MAILROOM_AS_OF at midnight, sees yesterday's orders
-- A February 29 birthday or signup is celebrated on February 28 in years without a February 29.
-- Rebuilt by the daily run.
with as_of as (
    select
        as_of_at,
        cast(extract(year from as_of_at) as integer) as as_of_year,
        cast(extract(month from as_of_at) as integer) as as_of_month,
        cast(extract(day from as_of_at) as integer) as as_of_day
    from (select {{ as_of_timestamp() }} as as_of_at) as fixed
),

today as (
    select
        *,
        -- February 28 of a year without a February 29: the day February 29 dates are celebrated on.
        (as_of_month = 2 and as_of_day = 28
         and not (mod(as_of_year, 4) = 0 and (mod(as_of_year, 100) <> 0 or mod(as_of_year, 400) = 0)))
            as is_leap_day_stand_in
    from as_of
),

customers as (
    select customer_id, created_at, birth_date from {{ ref('dim_customers') }}
),

-- Dates whose month and day may fall on the as-of date: signups and birthdays.
dated as (
    select customer_id, 'anniversary' as milestone_kind, cast(created_at as date) as milestone_date
    from customers
    union all
    select customer_id, 'birthday', birth_date
    from customers
    where birth_date is not null
),

dated_parts as (
    select
        customer_id,
        milestone_kind,
        cast(extract(year from milestone_date) as integer) as milestone_year,
        cast(extract(month from milestone_date) as integer) as milestone_month,
        cast(extract(day from milestone_date) as integer) as milestone_day
    from dated
),

on_this_day as (
    select
        dated_parts.customer_id,
        dated_parts.milestone_kind,
        today.as_of_year - dated_parts.milestone_year as years
    from dated_parts
    cross join today
    where dated_parts.milestone_year < today.as_of_year
        and ((dated_parts.milestone_month = today.as_of_month and dated_parts.milestone_day = today.as_of_day)
             or (dated_parts.milestone_month = 2 and dated_parts.milestone_day = 29 and today.is_leap_day_stand_in))
),

nth_orders as (
    select features.customer_id, features.orders
    from {{ ref('customer_features') }} as features
    cross join today
    where features.orders in ({{ var('milestone_order_counts') | join(', ') }})
        and features.last_purchase_at > today.as_of_at - interval '1 day'
        and features.last_purchase_at <= today.as_of_at
),

milestones as (
    select
        on_this_day.customer_id,
        on_this_day.milestone_kind,
        on_this_day.milestone_kind || ':' || cast(today.as_of_year as varchar) as milestone_key,
        case when on_this_day.milestone_kind = 'anniversary' then on_this_day.years end as milestone_number
    from on_this_day
    cross join today
    union all
    select customer_id, 'nth_order', 'orders:' || cast(orders as varchar), orders
    from nth_orders
)

select
    cast(milestones.customer_id as varchar) as customer_id,
    cast(milestones.milestone_key as varchar) as entry_key,
    cast(today.as_of_at as timestamp) as entry_at,
    cast(milestones.milestone_kind as varchar) as milestone_kind,
    cast(milestones.milestone_key as varchar) as milestone_key,
    cast(milestones.milestone_number as integer) as milestone_number
from milestones
cross join today

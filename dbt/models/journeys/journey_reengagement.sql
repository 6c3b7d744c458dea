-- Re-engagement journey entries: customers who have lapsed as of MAILROOM_AS_OF (or now) and may be
-- mailed. Lapsed: the last order more than var('reengagement_lapsed_days') days ago, and no (human)
-- open or click in the last var('reengagement_quiet_days') days. Keyed by the last order's date, so a
-- customer who orders again and lapses again is a new entry. Rebuilt by the daily run.
with as_of as (
    select {{ as_of_timestamp() }} as as_of_at
),

features as (
    select
        customer_id,
        last_purchase_at,
        days_since_last_purchase,
        case
            when last_open_at is null then last_click_at
            when last_click_at is null then last_open_at
            else greatest(last_open_at, last_click_at)
        end as last_engaged_at
    from {{ ref('customer_features') }}
)

select
    cast(features.customer_id as varchar) as customer_id,
    cast('lapsed:' || cast(cast(features.last_purchase_at as date) as varchar) as varchar) as entry_key,
    cast(as_of.as_of_at as timestamp) as entry_at,
    cast(features.last_purchase_at as timestamp) as last_purchase_at,
    cast(features.last_engaged_at as timestamp) as last_engaged_at,
    cast(features.days_since_last_purchase as integer) as days_since_last_purchase
from features
cross join as_of
join {{ ref('campaign_candidates') }} as candidates on candidates.customer_id = features.customer_id
where candidates.is_eligible
    and features.last_purchase_at < as_of.as_of_at - interval '{{ var("reengagement_lapsed_days") }} days'
    and (features.last_engaged_at is null
         or features.last_engaged_at < as_of.as_of_at - interval '{{ var("reengagement_quiet_days") }} days')

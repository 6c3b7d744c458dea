-- One primary segment per customer: a lifecycle stage crossed with the customer's top category.
-- The rules are checked in this order; edit the thresholds in dbt_project.yml vars:
--   vip      top RFM quintile for spend and at least the 4th for frequency, bought within at-risk days
--   new      first seen within var('segment_new_days')
--   active   bought within var('segment_active_purchase_days') or opened/clicked within
--            var('segment_active_engagement_days')
--   at_risk  bought or engaged within var('segment_at_risk_days')
--   lapsed   everyone else
with customers as (
    select customer_id, created_at from {{ ref('dim_customers') }}
),

features as (
    select * from {{ ref('customer_features') }}
),

as_of as (
    select {{ as_of_timestamp() }} as as_of_at
),

facts as (
    select
        customers.customer_id,
        features.top_category,
        features.rfm_monetary_score,
        features.rfm_frequency_score,
        features.days_since_last_purchase,
        {{ days_between('customers.created_at', 'as_of.as_of_at') }} as days_known,
        {{ days_between('greatest(coalesce(features.last_open_at, features.last_click_at), coalesce(features.last_click_at, features.last_open_at))', 'as_of.as_of_at') }} as days_since_engaged
    from customers
    cross join as_of
    join features on features.customer_id = customers.customer_id
),

classified as (
    select
        *,
        case
            when rfm_monetary_score = 5 and rfm_frequency_score >= 4
                and days_since_last_purchase <= {{ var('segment_at_risk_days') }} then 'vip'
            when days_known <= {{ var('segment_new_days') }} then 'new'
            when days_since_last_purchase <= {{ var('segment_active_purchase_days') }}
                or days_since_engaged <= {{ var('segment_active_engagement_days') }} then 'active'
            when days_since_last_purchase <= {{ var('segment_at_risk_days') }}
                or days_since_engaged <= {{ var('segment_at_risk_days') }} then 'at_risk'
            else 'lapsed'
        end as lifecycle_segment
    from facts
)

select
    cast(customer_id as varchar) as customer_id,
    cast(lifecycle_segment as varchar) as lifecycle_segment,
    cast(coalesce(top_category, 'general') as varchar) as category_segment,
    cast(lifecycle_segment || ':' || coalesce(top_category, 'general') as varchar) as segment_key,
    cast(
        case lifecycle_segment
            when 'vip' then 'VIP'
            when 'new' then 'New'
            when 'active' then 'Active'
            when 'at_risk' then 'At risk'
            else 'Lapsed'
        end || ' · ' || coalesce(top_category, 'general') as varchar
    ) as segment_name
from classified

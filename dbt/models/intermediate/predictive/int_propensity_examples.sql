-- Training examples for the engagement propensity models (docs/design/predictive.md, section 6): one row
-- per customer and weekly cutoff T = as_of - 7k days (k = 0 .. var('propensity_training_weeks')). Features
-- see only events at or before T (point in time by construction: nothing after T enters a feature), over
-- the 90 days before it (recency beyond that is NULL); labels are what happened in the 7 days after T:
--   is_mailed_7d  a delivery in (T, T + 7 d]     clicked_7d    a click in (T, T + 7 d]
--   converted_7d  an Order Completed in (T, T + 7 d]             is_label_complete  T + 7 d <= as_of
-- Machine opens never count as opens; their share is a feature (Apple Mail Privacy Protection).
{% set lookback = 90 %}
with cutoffs as (
    {% for weeks_back in range((var('propensity_training_weeks') | int) + 1) %}
        select
            {{ weeks_back }} as weeks_back,
            cast({{ as_of_timestamp() }} - interval '{{ 7 * weeks_back }} days' as timestamp) as cutoff_at
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

as_of as (
    select {{ as_of_timestamp() }} as as_of_at
),

email as (
    select customer_id, provider_message_id, event_type, event_at, is_machine_open
    from {{ ref('int_email_events_resolved') }}
    where provider_message_id is not null and event_type in ('delivered', 'open', 'click')
),

email_near_cutoffs as (
    select
        email.*,
        cutoffs.cutoff_at
    from email
    join cutoffs
        on email.event_at > cutoffs.cutoff_at - interval '{{ lookback }} days'
        and email.event_at <= cutoffs.cutoff_at + interval '7 days'
),

email_features as (
    select
        customer_id,
        cutoff_at,
        {% for days in (30, lookback) %}
            count(distinct case
                when event_type = 'delivered' and event_at <= cutoff_at
                    and event_at > cutoff_at - interval '{{ days }} days' then provider_message_id
            end) as delivered_{{ days }}d,
            count(distinct case
                when event_type = 'open' and not is_machine_open and event_at <= cutoff_at
                    and event_at > cutoff_at - interval '{{ days }} days' then provider_message_id
            end) as opened_{{ days }}d,
            count(distinct case
                when event_type = 'click' and event_at <= cutoff_at
                    and event_at > cutoff_at - interval '{{ days }} days' then provider_message_id
            end) as clicked_{{ days }}d,
        {% endfor %}
        count(distinct case
            when event_type = 'open' and is_machine_open and event_at <= cutoff_at then provider_message_id
        end) as machine_opened,
        max(case when event_type = 'open' and not is_machine_open and event_at <= cutoff_at then event_at end)
            as last_open_at,
        max(case when event_type = 'click' and event_at <= cutoff_at then event_at end) as last_click_at,
        max(case when event_type = 'delivered' and event_at > cutoff_at then 1 else 0 end) as mailed_after,
        max(case when event_type = 'click' and event_at > cutoff_at then 1 else 0 end) as clicked_after
    from email_near_cutoffs
    group by customer_id, cutoff_at
),

shop as (
    select customer_id, event_type, event_name, event_at, revenue
    from {{ ref('int_cdp_events_resolved') }}
    where customer_id is not null
        and (event_type = 'page' or event_name in ('Order Completed', 'Product Added'))
),

shop_near_cutoffs as (
    select
        shop.*,
        cutoffs.cutoff_at
    from shop
    join cutoffs
        on shop.event_at > cutoffs.cutoff_at - interval '{{ lookback }} days'
        and shop.event_at <= cutoffs.cutoff_at + interval '7 days'
),

shop_features as (
    select
        customer_id,
        cutoff_at,
        sum(case when event_name = 'Order Completed' and event_at <= cutoff_at then 1 else 0 end) as orders,
        sum(case when event_name = 'Order Completed' and event_at <= cutoff_at then revenue else 0 end) as revenue,
        max(case when event_name = 'Order Completed' and event_at <= cutoff_at then event_at end) as last_order_at,
        sum(case
            when event_name = 'Product Added' and event_at <= cutoff_at
                and event_at > cutoff_at - interval '7 days' then 1 else 0
        end) as cart_adds_7d,
        sum(case
            when event_name = 'Product Added' and event_at <= cutoff_at
                and event_at > cutoff_at - interval '30 days' then 1 else 0
        end) as cart_adds_30d,
        max(case when event_name = 'Product Added' and event_at <= cutoff_at then event_at end) as last_cart_add_at,
        sum(case
            when event_type = 'page' and event_at <= cutoff_at
                and event_at > cutoff_at - interval '30 days' then 1 else 0
        end) as page_views_30d,
        max(case when event_name = 'Order Completed' and event_at > cutoff_at then 1 else 0 end) as converted_after
    from shop_near_cutoffs
    group by customer_id, cutoff_at
),

examples as (
    select
        customers.customer_id,
        cutoffs.cutoff_at,
        customers.created_at
    from {{ ref('dim_customers') }} as customers
    cross join cutoffs
    where customers.created_at <= cutoffs.cutoff_at
)

select
    cast(examples.customer_id as varchar) as customer_id,
    cast(examples.cutoff_at as timestamp) as cutoff_at,
    cast(coalesce(email_features.delivered_30d, 0) as integer) as delivered_30d,
    cast(coalesce(email_features.opened_30d, 0) as integer) as opened_30d,
    cast(coalesce(email_features.clicked_30d, 0) as integer) as clicked_30d,
    cast(coalesce(email_features.delivered_{{ lookback }}d, 0) as integer) as delivered_90d,
    cast(coalesce(email_features.opened_{{ lookback }}d, 0) as integer) as opened_90d,
    cast(coalesce(email_features.clicked_{{ lookback }}d, 0) as integer) as clicked_90d,
    cast({{ days_between('email_features.last_open_at', 'examples.cutoff_at') }} as integer) as days_since_last_open,
    cast({{ days_between('email_features.last_click_at', 'examples.cutoff_at') }} as integer) as days_since_last_click,
    case
        when email_features.delivered_{{ lookback }}d > 0
            then cast(email_features.machine_opened as double precision)
            / cast(email_features.delivered_{{ lookback }}d as double precision)
    end as machine_open_share_90d,
    cast(coalesce(shop_features.orders, 0) as integer) as orders_90d,
    cast(coalesce(shop_features.revenue, 0) as double precision) as revenue_90d,
    cast({{ days_between('shop_features.last_order_at', 'examples.cutoff_at') }} as integer) as days_since_last_order,
    cast(coalesce(shop_features.cart_adds_7d, 0) as integer) as cart_adds_7d,
    cast(coalesce(shop_features.cart_adds_30d, 0) as integer) as cart_adds_30d,
    cast({{ days_between('shop_features.last_cart_add_at', 'examples.cutoff_at') }} as integer)
        as days_since_last_cart_add,
    cast(coalesce(shop_features.page_views_30d, 0) as integer) as page_views_30d,
    cast({{ days_between('examples.created_at', 'examples.cutoff_at') }} as integer) as tenure_days,
    coalesce(email_features.mailed_after, 0) = 1 as is_mailed_7d,
    coalesce(email_features.clicked_after, 0) = 1 as clicked_7d,
    coalesce(shop_features.converted_after, 0) = 1 as converted_7d,
    examples.cutoff_at + interval '7 days' <= as_of.as_of_at as is_label_complete
from examples
cross join as_of
left join email_features
    on email_features.customer_id = examples.customer_id and email_features.cutoff_at = examples.cutoff_at
left join shop_features
    on shop_features.customer_id = examples.customer_id and shop_features.cutoff_at = examples.cutoff_at

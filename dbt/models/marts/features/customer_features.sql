-- Behavioural features per customer for segments, personalization and send-time optimization.
-- Opens exclude machine opens (Apple Mail Privacy Protection); engagement counts the last
-- var('engagement_lookback_days') days before MAILROOM_AS_OF (or now).
{%- set lookback = var('engagement_lookback_days') %}
{%- set prior_opens = var('send_hour_prior_opens') %}

with customers as (
    select customer_id, jurisdiction, created_at from {{ ref('dim_customers') }}
),

as_of as (
    select {{ as_of_timestamp() }} as as_of_at
),

email_events as (
    -- Evaluated as of a date, later events have not happened yet (sends use the wall clock, so with
    -- MAILROOM_AS_OF in the past their engagement arrives "after" it; it must not score above 100).
    select events.*
    from {{ ref('int_email_events_resolved') }} as events
    cross join as_of
    where events.event_at <= as_of.as_of_at
),

human_engagement as (
    select * from email_events
    where (event_type = 'open' and not is_machine_open) or event_type = 'click'
),

engagement as (
    select
        email_events.customer_id,
        count(distinct case when email_events.event_type = 'delivered'
            and email_events.event_at >= as_of.as_of_at - interval '{{ lookback }} days'
            then email_events.provider_message_id end) as delivered_recent,
        count(distinct case when email_events.event_type = 'open' and not email_events.is_machine_open
            and email_events.event_at >= as_of.as_of_at - interval '{{ lookback }} days'
            then email_events.provider_message_id end) as opened_recent,
        count(distinct case when email_events.event_type = 'click'
            and email_events.event_at >= as_of.as_of_at - interval '{{ lookback }} days'
            then email_events.provider_message_id end) as clicked_recent,
        max(case when email_events.event_type = 'open' and not email_events.is_machine_open
            then email_events.event_at end) as last_open_at,
        max(case when email_events.event_type = 'click' then email_events.event_at end) as last_click_at
    from email_events
    cross join as_of
    group by email_events.customer_id
),

first_deliveries as (
    select customer_id, provider_message_id, min(event_at) as delivered_at
    from email_events where event_type = 'delivered'
    group by customer_id, provider_message_id
),

first_opens as (
    select customer_id, provider_message_id, min(event_at) as opened_at
    from email_events where event_type = 'open' and not is_machine_open
    group by customer_id, provider_message_id
),

time_to_open as (
    select
        first_deliveries.customer_id,
        sum({{ seconds_between('first_deliveries.delivered_at', 'first_opens.opened_at') }}) as total_seconds,
        count(*) as opened_messages
    from first_deliveries
    join first_opens
        on first_opens.customer_id = first_deliveries.customer_id
        and first_opens.provider_message_id = first_deliveries.provider_message_id
    where first_opens.opened_at >= first_deliveries.delivered_at
    group by first_deliveries.customer_id
),

cdp_events as (
    -- As of the same instant as the email events: an order that follows a wall-clock send (or a
    -- skewed clock) has not happened yet, and must not make days_since_last_purchase negative.
    select events.*
    from {{ ref('int_cdp_events_resolved') }} as events
    cross join as_of
    where events.customer_id is not null and events.event_at <= as_of.as_of_at
),

category_weights as (
    select
        customer_id,
        product_category,
        sum(case event_name
            when 'Product Viewed' then 1
            when 'Product Added' then 3
            when 'Checkout Started' then 3
            when 'Order Completed' then 5
            else 0 end) as weight
    from cdp_events
    where product_category is not null
    group by customer_id, product_category
),

ranked_categories as (
    select
        *,
        row_number() over (partition by customer_id order by weight desc, product_category) as category_rank
    from category_weights
    where weight > 0
),

preferred_categories as (
    select
        customer_id,
        string_agg(product_category, '|' order by category_rank) as preferred_categories,
        max(case when category_rank = 1 then product_category end) as top_category
    from ranked_categories
    where category_rank <= 3
    group by customer_id
),

orders as (
    select
        customer_id,
        count(*) as orders,
        -- rounded half up to cents by exact arithmetic (avg() is a double on DuckDB, numeric on PostgreSQL)
        floor((sum(revenue) * 200 + count(revenue)) / (2.0 * nullif(count(revenue), 0))) / 100 as avg_order_value,
        sum(revenue) as monetary_value,
        max(event_at) as last_purchase_at
    from cdp_events
    where event_name = 'Order Completed'
    group by customer_id
),

carts as (
    select customer_id, max(event_at) as last_cart_activity_at
    from cdp_events
    where event_name in ('Product Added', 'Checkout Started')
    group by customer_id
),

device_counts as (
    select
        customer_id,
        device_type,
        row_number() over (partition by customer_id order by count(*) desc, device_type) as device_rank
    from cdp_events
    where device_type is not null
    group by customer_id, device_type
),

-- Send hour: circular mean of the local hours of the customer's own opens and clicks, shrunk toward
-- the hour of everyone in the same jurisdiction: weight = own / (own + var('send_hour_prior_opens')).
engagement_hours as (
    select
        customer_id,
        cast(extract(hour from local_event_at) as integer) as local_hour
    from human_engagement
),

own_hours as (
    select
        customer_id,
        count(*) as engagements,
        avg(sin(2 * pi() * local_hour / 24.0)) as hour_sin,
        avg(cos(2 * pi() * local_hour / 24.0)) as hour_cos
    from engagement_hours
    group by customer_id
),

prior_hours as (
    select
        customers.jurisdiction,
        avg(sin(2 * pi() * engagement_hours.local_hour / 24.0)) as hour_sin,
        avg(cos(2 * pi() * engagement_hours.local_hour / 24.0)) as hour_cos
    from engagement_hours
    join customers on customers.customer_id = engagement_hours.customer_id
    group by customers.jurisdiction
),

send_hours as (
    select
        customers.customer_id,
        coalesce(own_hours.engagements, 0) as engagements,
        coalesce(own_hours.engagements, 0) * 1.0
            / (coalesce(own_hours.engagements, 0) + {{ prior_opens }}) as own_weight,
        own_hours.hour_sin as own_sin,
        own_hours.hour_cos as own_cos,
        prior_hours.hour_sin as prior_sin,
        prior_hours.hour_cos as prior_cos
    from customers
    left join own_hours on own_hours.customer_id = customers.customer_id
    left join prior_hours on prior_hours.jurisdiction = customers.jurisdiction
),

best_hours as (
    select
        customer_id,
        engagements,
        case
            when own_sin is null and prior_sin is null then 10
            else mod(cast(round(
                atan2(
                    own_weight * coalesce(own_sin, 0) + (1 - own_weight) * coalesce(prior_sin, own_sin),
                    own_weight * coalesce(own_cos, 0) + (1 - own_weight) * coalesce(prior_cos, own_cos)
                ) * 24 / (2 * pi())
            ) as integer) + 24, 24)
        end as best_send_hour
    from send_hours
),

rfm as (
    select
        customer_id,
        ntile(5) over (order by last_purchase_at, customer_id) as recency_score,
        ntile(5) over (order by orders, customer_id) as frequency_score,
        ntile(5) over (order by monetary_value, customer_id) as monetary_score
    from orders
),

assembled as (
    select
        customers.customer_id,
        coalesce(engagement.delivered_recent, 0) as delivered_recent,
        coalesce(engagement.opened_recent, 0) as opened_recent,
        coalesce(engagement.clicked_recent, 0) as clicked_recent,
        engagement.last_open_at,
        engagement.last_click_at,
        {{ days_between('greatest(coalesce(engagement.last_open_at, engagement.last_click_at), coalesce(engagement.last_click_at, engagement.last_open_at))', 'as_of.as_of_at') }} as days_since_engaged,
        -- Whole minutes by exact integer arithmetic, so both engines round alike.
        floor(time_to_open.total_seconds / (60.0 * time_to_open.opened_messages)) as avg_time_to_open_minutes,
        preferred_categories.preferred_categories,
        preferred_categories.top_category,
        coalesce(orders.orders, 0) as orders,
        orders.avg_order_value,
        orders.last_purchase_at,
        greatest({{ days_between('customers.created_at', 'as_of.as_of_at') }}, 1) as days_known,
        case when carts.last_cart_activity_at > coalesce(orders.last_purchase_at, cast('1900-01-01' as timestamp))
            then carts.last_cart_activity_at end as cart_abandoned_at,
        device_counts.device_type,
        best_hours.best_send_hour,
        best_hours.engagements as send_hour_engagements,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        as_of.as_of_at
    from customers
    cross join as_of
    left join engagement on engagement.customer_id = customers.customer_id
    left join time_to_open on time_to_open.customer_id = customers.customer_id
    left join preferred_categories on preferred_categories.customer_id = customers.customer_id
    left join orders on orders.customer_id = customers.customer_id
    left join carts on carts.customer_id = customers.customer_id
    left join device_counts on device_counts.customer_id = customers.customer_id and device_counts.device_rank = 1
    left join best_hours on best_hours.customer_id = customers.customer_id
    left join rfm on rfm.customer_id = customers.customer_id
)

select
    cast(customer_id as varchar) as customer_id,
    -- 40% open rate, 30% click rate (doubled, capped), 30% recency (fading to 0 over the lookback),
    -- rounded half up. Integer arithmetic over one common denominator keeps both engines exact.
    cast(floor(
        (2 * (40 * least(opened_recent, greatest(delivered_recent, 1)) * {{ lookback }}
              + 30 * least(2 * clicked_recent, greatest(delivered_recent, 1)) * {{ lookback }}
              + 30 * greatest(0, {{ lookback }} - coalesce(days_since_engaged, {{ lookback }})) * greatest(delivered_recent, 1))
         + greatest(delivered_recent, 1) * {{ lookback }})
        / (2.0 * greatest(delivered_recent, 1) * {{ lookback }})
    ) as integer) as engagement_score,
    cast(delivered_recent as integer) as emails_delivered_recent,
    cast(opened_recent as integer) as emails_opened_recent,
    cast(clicked_recent as integer) as emails_clicked_recent,
    cast(last_open_at as timestamp) as last_open_at,
    cast(last_click_at as timestamp) as last_click_at,
    cast(avg_time_to_open_minutes as integer) as avg_time_to_open_minutes,
    cast(preferred_categories as varchar) as preferred_categories,
    cast(top_category as varchar) as top_category,
    cast(orders as integer) as orders,
    -- orders per 30.44-day month, truncated to 3 decimals by exact arithmetic (same on both engines)
    cast(floor(orders * 30440.0 / days_known) / 1000 as decimal(12, 3)) as purchase_frequency,
    cast(avg_order_value as decimal(12, 2)) as avg_order_value,
    cast(last_purchase_at as timestamp) as last_purchase_at,
    cast({{ days_between('last_purchase_at', 'as_of_at') }} as integer) as days_since_last_purchase,
    cast(cart_abandoned_at as timestamp) as cart_abandoned_at,
    cast(device_type as varchar) as device_type,
    cast(recency_score as integer) as rfm_recency_score,
    cast(frequency_score as integer) as rfm_frequency_score,
    cast(monetary_score as integer) as rfm_monetary_score,
    cast(best_send_hour as integer) as best_send_hour,
    cast(send_hour_engagements as integer) as send_hour_engagements
from assembled

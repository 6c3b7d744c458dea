-- Orders attributed to the last message a customer was sent before ordering, when the order came
-- within var('conversion_window_hours') of that send (last touch).
{%- set window = var('conversion_window_hours') %}

with orders as (
    select message_id as order_event_id, customer_id, event_at as ordered_at, revenue
    from {{ ref('int_cdp_events_resolved') }}
    where event_name = 'Order Completed' and customer_id is not null
),

candidates as (
    select
        orders.order_event_id,
        orders.customer_id,
        orders.ordered_at,
        orders.revenue,
        sends.message_id,
        sends.campaign_id,
        sends.variant_id,
        sends.content_key,
        sends.sent_at,
        row_number() over (partition by orders.order_event_id order by sends.sent_at desc, sends.message_id) as recency
    from orders
    join {{ ref('int_email_sends') }} as sends
        on sends.customer_id = orders.customer_id
        and sends.sent_at <= orders.ordered_at
        and sends.sent_at > orders.ordered_at - interval '{{ window }} hours'
)

select
    cast(order_event_id as varchar) as order_event_id,
    cast(customer_id as varchar) as customer_id,
    cast(message_id as varchar) as message_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(content_key as varchar) as content_key,
    cast(sent_at as timestamp) as sent_at,
    cast(ordered_at as timestamp) as ordered_at,
    cast(revenue as decimal(12, 2)) as revenue
from candidates
where recency = 1

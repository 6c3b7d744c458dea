-- The contents of each customer's open cart: products added after their last order, one row per
-- customer and product, the most recently added first. The cart-abandonment campaign shows these.
with events as (
    select customer_id, event_name, event_at, product_id
    from {{ ref('int_cdp_events_resolved') }}
    where customer_id is not null
),

last_orders as (
    select customer_id, max(event_at) as last_order_at
    from events
    where event_name = 'Order Completed'
    group by customer_id
),

added as (
    select events.customer_id, events.product_id, max(events.event_at) as added_at
    from events
    left join last_orders on last_orders.customer_id = events.customer_id
    where events.event_name = 'Product Added'
        and events.product_id is not null
        and events.event_at > coalesce(last_orders.last_order_at, cast('1900-01-01' as timestamp))
    group by events.customer_id, events.product_id
),

products as (
    select product_id, product_name, product_category, price, currency, product_url
    from (
        select *, row_number() over (partition by product_id order by updated_at desc) as recency
        from {{ ref('stg_catalog__products') }}
    ) as versions
    where recency = 1
)

select
    cast(added.customer_id as varchar) as customer_id,
    cast(row_number() over (partition by added.customer_id order by added.added_at desc, added.product_id) as integer)
        as item_rank,
    cast(added.product_id as varchar) as product_id,
    cast(products.product_name as varchar) as product_name,
    cast(products.product_category as varchar) as product_category,
    cast(products.price as decimal(12, 2)) as price,
    cast(products.currency as varchar) as currency,
    cast(products.product_url as varchar) as product_url,
    cast(added.added_at as timestamp) as added_at
from added
join products on products.product_id = added.product_id

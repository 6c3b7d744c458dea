-- The products of each customer's latest open cart, as the journeys' fast path has seen them: the most
-- recent cart with a 'Product Added' in journey_events and no 'Order Completed' for the same cart_id.
-- One row per customer and product, the most recently added first; the same columns as
-- marts.abandoned_cart_items (plus the cart), so the cart step's message renders its products from
-- here (campaign meta `products: journey_cart`). A table, rebuilt by every fast-path run.
{{ config(tags=['journeys_fast_path']) }}

with events as (
    select * from {{ ref('journey_events') }}
    where cart_id is not null
),

ordered_carts as (
    select distinct cart_id
    from events
    where event_name = 'Order Completed'
),

adds as (
    select events.customer_id, events.cart_id, events.product_id, events.event_at
    from events
    where events.event_name = 'Product Added'
        and events.product_id is not null
        and not exists (select 1 from ordered_carts where ordered_carts.cart_id = events.cart_id)
),

latest_carts as (
    select customer_id, cart_id
    from (
        select
            customer_id,
            cart_id,
            row_number() over (partition by customer_id order by max(event_at) desc, cart_id desc) as recency
        from adds
        group by customer_id, cart_id
    ) as carts
    where recency = 1
),

added as (
    select adds.customer_id, adds.cart_id, adds.product_id, max(adds.event_at) as added_at
    from adds
    join latest_carts on latest_carts.customer_id = adds.customer_id and latest_carts.cart_id = adds.cart_id
    group by adds.customer_id, adds.cart_id, adds.product_id
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
    cast(added.added_at as timestamp) as added_at,
    cast(added.cart_id as varchar) as cart_id
from added
join products on products.product_id = added.product_id

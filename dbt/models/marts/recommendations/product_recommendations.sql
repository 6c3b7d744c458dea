-- Top var('recommendations_per_customer') active products per customer, never one the customer has
-- bought. Score = co-purchase strength (how many customers bought this product together with one the
-- customer bought) + category affinity (the customer's weight for one of their top 3 categories times
-- the product's share of that category's buyers). Customers with no signal get the most popular
-- products (cold start).
{%- set per_customer = var('recommendations_per_customer') %}

with products as (
    select product_id, product_category, product_name, price, currency, product_url
    from (
        select *, row_number() over (partition by product_id order by updated_at desc) as recency
        from {{ ref('stg_catalog__products') }}
    ) as versions
    where recency = 1 and is_active
),

purchases as (
    select distinct events.customer_id, items.product_id
    from {{ ref('stg_cdp__order_items') }} as items
    join {{ ref('int_cdp_events_resolved') }} as events on events.message_id = items.message_id
    where events.customer_id is not null
),

popularity as (
    select product_id, count(*) as buyers
    from purchases
    group by product_id
),

category_share as (
    select
        products.product_id,
        products.product_category,
        coalesce(popularity.buyers, 0) + 1.0 as weight,
        (coalesce(popularity.buyers, 0) + 1.0)
            / sum(coalesce(popularity.buyers, 0) + 1.0) over (partition by products.product_category) as share
    from products
    left join popularity on popularity.product_id = products.product_id
),

-- Item-to-item: how many customers bought both products; each product keeps its 20 strongest partners
-- so scoring stays linear in customers.
product_pairs as (
    select first_product.product_id, second_product.product_id as also_bought, count(*) as buyers
    from purchases as first_product
    join purchases as second_product
        on second_product.customer_id = first_product.customer_id
        and second_product.product_id <> first_product.product_id
    group by first_product.product_id, second_product.product_id
),

strongest_pairs as (
    select *
    from (
        select *, row_number() over (partition by product_id order by buyers desc, also_bought) as pair_rank
        from product_pairs
    ) as ranked_pairs
    where pair_rank <= 20
),

co_purchase as (
    select purchases.customer_id, strongest_pairs.also_bought as product_id, sum(strongest_pairs.buyers) * 1.0 as strength
    from purchases
    join strongest_pairs on strongest_pairs.product_id = purchases.product_id
    group by purchases.customer_id, strongest_pairs.also_bought
),

-- Category affinity: the customer's three strongest categories times the share of each of that
-- category's best sellers (the top 2 x N per category; the long tail could never rank anyway).
customer_categories as (
    select customer_id, product_category, weight
    from (
        select
            customer_id,
            product_category,
            count(*) as weight,
            row_number() over (partition by customer_id order by count(*) desc, product_category) as category_rank
        from {{ ref('int_cdp_events_resolved') }}
        where customer_id is not null and product_category is not null
        group by customer_id, product_category
    ) as ranked_categories
    where category_rank <= 3
),

category_best_sellers as (
    select *
    from (
        select
            *,
            row_number() over (partition by product_category order by share desc, product_id) as seller_rank
        from category_share
    ) as ranked_products
    where seller_rank <= {{ per_customer }} * 2
),

affinity as (
    select
        customer_categories.customer_id,
        category_best_sellers.product_id,
        customer_categories.weight * category_best_sellers.share as strength
    from customer_categories
    join category_best_sellers on category_best_sellers.product_category = customer_categories.product_category
),

scored as (
    select customer_id, product_id, sum(strength) as score,
        -- co_purchase whenever a bought-together signal exists ('co_purchase' > 'category_affinity')
        max(source) as source
    from (
        select customer_id, product_id, strength, 'co_purchase' as source from co_purchase
        union all
        select customer_id, product_id, strength, 'category_affinity' from affinity
    ) as signals
    group by customer_id, product_id
),

candidates as (
    select scored.*
    from scored
    join products on products.product_id = scored.product_id
    where not exists (
        select 1 from purchases
        where purchases.customer_id = scored.customer_id and purchases.product_id = scored.product_id
    )
),

-- Cold start: every customer can fall back on the most popular active products.
popular as (
    select product_id, row_number() over (order by weight desc, product_id) as popularity_rank
    from category_share
),

fallback as (
    select customers.customer_id, popular.product_id, -popular.popularity_rank * 1.0 - 1000000 as score,
        'popular' as source
    from {{ ref('dim_customers') }} as customers
    join popular on popular.popularity_rank <= {{ per_customer }} * 2
    where not exists (
        select 1 from purchases
        where purchases.customer_id = customers.customer_id and purchases.product_id = popular.product_id
    )
),

-- A product can be both a candidate and a fallback: keep its best score, and the signal it came from.
combined as (
    select customer_id, product_id, score, source from candidates
    union all
    select customer_id, product_id, score, source from fallback
),

best as (
    select
        customer_id,
        product_id,
        max(score) as score,
        coalesce(max(case when source <> 'popular' then source end), 'popular') as source
    from combined
    group by customer_id, product_id
),

ranked as (
    select
        *,
        -- Scores are doubles on DuckDB and exact numerics on PostgreSQL: rank on a rounded score so
        -- true ties fall back to product_id on both engines alike.
        row_number() over (partition by customer_id order by round(score, 9) desc, product_id) as recommendation_rank
    from best
)

select
    cast(ranked.customer_id as varchar) as customer_id,
    cast(ranked.recommendation_rank as integer) as recommendation_rank,
    cast(ranked.product_id as varchar) as product_id,
    cast(products.product_name as varchar) as product_name,
    cast(products.product_category as varchar) as product_category,
    cast(products.price as decimal(12, 2)) as price,
    cast(products.currency as varchar) as currency,
    cast(products.product_url as varchar) as product_url,
    cast(round(ranked.score, 6) as decimal(18, 6)) as score,
    cast(ranked.source as varchar) as recommendation_source
from ranked
join products on products.product_id = ranked.product_id
where ranked.recommendation_rank <= {{ per_customer }}

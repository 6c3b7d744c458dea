-- One row per product line of each Order Completed event (Segment's properties.products list).
with items as (
    {{ json_array_rows(source('raw', 'cdp_events'), 'properties', 'products', ['message_id', 'event_at']) }}
        and event_name = 'Order Completed'
)

select
    message_id,
    event_at as ordered_at,
    {{ json_text('item', 'product_id') }} as product_id,
    {{ json_text('item', 'category') }} as product_category,
    cast({{ json_text('item', 'price') }} as decimal(12, 2)) as price,
    cast({{ json_text('item', 'quantity') }} as integer) as quantity
from items

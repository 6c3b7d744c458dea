-- One row per CDP event, with the Segment fields later models read pulled out of the JSON objects.
-- A table rather than a view: unpacking JSON is the expensive part, and it is done once here.
{{ config(materialized='table') }}

with source as (
    select * from {{ source('raw', 'cdp_events') }}
)

select
    message_id,
    event_type,
    event_name,
    user_id,
    anonymous_id,
    previous_id,
    event_at,
    received_at,
    coalesce({{ json_text('traits', 'email') }}, {{ json_text('context', 'traits.email') }}) as email,
    coalesce({{ json_text('traits', 'phone') }}, {{ json_text('context', 'traits.phone') }}) as phone,
    {{ json_text('traits', 'first_name') }} as first_name,
    {{ json_text('traits', 'last_name') }} as last_name,
    {{ json_text('traits', 'country') }} as country,
    {{ json_text('context', 'timezone') }} as timezone,
    {{ json_text('context', 'device.type') }} as device_type,
    {{ json_text('properties', 'product_id') }} as product_id,
    {{ json_text('properties', 'category') }} as product_category,
    cast({{ json_text('properties', 'price') }} as decimal(12, 2)) as price,
    cast({{ json_text('properties', 'quantity') }} as integer) as quantity,
    {{ json_text('properties', 'cart_id') }} as cart_id,
    {{ json_text('properties', 'order_id') }} as order_id,
    cast({{ json_text('properties', 'revenue') }} as decimal(12, 2)) as revenue,
    {{ json_text('properties', 'url') }} as page_url,
    traits,
    properties,
    context,
    source_file,
    loaded_at
from source

-- One row per CDP event, with the Segment fields later models read pulled out of the JSON objects.
-- A table rather than a view: unpacking JSON is the expensive part, and it is done once per event.
-- Incremental: raw.cdp_events only grows (a messageId loaded twice goes to raw.quarantine), so a
-- daily run unpacks only the events it has not seen. New events are found by their key, not by
-- loaded_at: two loads can commit out of order. `dbt build --full-refresh` rebuilds it from raw
-- (needed after rows are deleted from raw, e.g. an erasure). A column added to this model reaches an
-- existing table as a new, empty column for the events already in it (on_schema_change): run
-- `dbt build --full-refresh --select stg_cdp__events+` to fill it for them too.
{{ config(materialized='incremental', incremental_strategy='append', unique_key='message_id',
          on_schema_change='append_new_columns') }}

-- materialized: parse each JSON column once per row (otherwise the engine may inline the CTE and
-- parse again for every field).
with source as materialized (
    select
        *,
        {{ json_parse('traits') }} as traits_json,
        {{ json_parse('properties') }} as properties_json,
        {{ json_parse('context') }} as context_json
    from {{ source('raw', 'cdp_events') }} as raw_events
    {% if is_incremental() %}
    where not exists (select 1 from {{ this }} as seen where seen.message_id = raw_events.message_id)
    {% endif %}
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
    coalesce({{ json_text('traits_json', 'email') }}, {{ json_text('context_json', 'traits.email') }}) as email,
    coalesce({{ json_text('traits_json', 'phone') }}, {{ json_text('context_json', 'traits.phone') }}) as phone,
    {{ json_text('traits_json', 'first_name') }} as first_name,
    {{ json_text('traits_json', 'last_name') }} as last_name,
    {{ json_text('traits_json', 'country') }} as country,
    -- Segment's birthday trait as sent (an ISO date, sometimes a timestamp); dim_customers validates it.
    {{ json_text('traits_json', 'birthday') }} as birthday,
    {{ json_text('context_json', 'timezone') }} as timezone,
    {{ json_text('context_json', 'device.type') }} as device_type,
    {{ json_text('properties_json', 'product_id') }} as product_id,
    {{ json_text('properties_json', 'category') }} as product_category,
    cast({{ json_text('properties_json', 'price') }} as decimal(12, 2)) as price,
    cast({{ json_text('properties_json', 'quantity') }} as integer) as quantity,
    {{ json_text('properties_json', 'cart_id') }} as cart_id,
    {{ json_text('properties_json', 'order_id') }} as order_id,
    cast({{ json_text('properties_json', 'revenue') }} as decimal(12, 2)) as revenue,
    {{ json_text('properties_json', 'url') }} as page_url,
    traits,
    properties,
    context,
    source_file,
    loaded_at
from source

-- Cart-abandonment journey entries: one row per 'Product Added' event with a cart, keyed by the cart
-- (the journey enters a customer once per cart; later adds to the same cart are rows the evaluator
-- finds already entered). Incremental like journey_events: events it has not seen, by messageId.
{{ config(materialized='incremental', incremental_strategy='append', unique_key='message_id',
          on_schema_change='append_new_columns', tags=['journeys_fast_path']) }}

select
    cast(events.customer_id as varchar) as customer_id,
    cast(events.cart_id as varchar) as entry_key,
    cast(events.event_at as timestamp) as entry_at,
    cast(events.cart_id as varchar) as cart_id,
    cast(events.message_id as varchar) as message_id,
    cast(events.is_provisional as boolean) as is_provisional
from {{ ref('journey_events') }} as events
where events.event_name = 'Product Added'
    and events.cart_id is not null
    {% if is_incremental() %}
    and not exists (select 1 from {{ this }} as seen where seen.message_id = events.message_id)
    {% endif %}

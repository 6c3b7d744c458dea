-- Welcome journey entries: one row per 'Signed Up' event, keyed by its messageId, so a replayed file
-- enters nobody twice. Incremental like journey_events: rows it has not seen, found by their key.
{{ config(materialized='incremental', incremental_strategy='append', unique_key='entry_key',
          on_schema_change='append_new_columns', tags=['journeys_fast_path']) }}

select
    cast(events.customer_id as varchar) as customer_id,
    cast(events.message_id as varchar) as entry_key,
    cast(events.event_at as timestamp) as entry_at,
    cast(events.email as varchar) as email,
    cast(events.first_name as varchar) as first_name,
    cast(events.timezone as varchar) as timezone,
    cast(events.is_provisional as boolean) as is_provisional
from {{ ref('journey_events') }} as events
where events.event_name = 'Signed Up'
    {% if is_incremental() %}
    and not exists (select 1 from {{ this }} as seen where seen.entry_key = events.message_id)
    {% endif %}

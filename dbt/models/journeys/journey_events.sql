-- The track events journeys act on (var('journey_event_names')), with the customer each belongs to.
-- The journeys' fast path builds this every few seconds, so it is incremental like stg_cdp__events:
-- append only, new events found by their key (an anti-join on message_id), never by loaded_at.
--
-- The customer: customer_identities by user_id, else by normalized email, else by anonymous_id. An
-- event none of them resolves (a signup newer than the marts) is provisional: its customer_id is the
-- one the identity graph gives a component named after that identifier, 'cus_' and 16 hex digits of
-- identity_node_key() (int_identity_graph: a user_id's component is its own node key, and a user_id
-- sorts before every other identifier). For a user_id that is exactly the id the next daily build
-- gives the person; for an email or an anonymous id it is the id their component gets while that
-- identifier is its smallest node (no user_id, CRM contact id or other email linked to it).
-- The resolution is the one known when the event arrived: a full refresh resolves every event again.
{{ config(materialized='incremental', incremental_strategy='append', unique_key='message_id',
          on_schema_change='append_new_columns', tags=['journeys_fast_path']) }}

{%- set event_names = var('journey_event_names') | map('replace', "'", "''") | list %}

with events as (
    select
        message_id,
        event_name,
        event_at,
        user_id,
        anonymous_id,
        nullif({{ normalized_email('email') }}, '') as email,
        first_name,
        timezone,
        cart_id,
        order_id,
        product_id,
        product_category,
        price,
        loaded_at
    from {{ ref('stg_cdp__events') }} as stg_events
    where event_type = 'track'
        and event_name in ('{{ event_names | join("', '") }}')
        {% if is_incremental() %}
        and not exists (select 1 from {{ this }} as seen where seen.message_id = stg_events.message_id)
        {% endif %}
),

identifiers as (
    select distinct customer_id, identifier_type, identifier_value
    from {{ ref('customer_identities') }}
),

resolved as (
    select
        events.*,
        coalesce(by_user.customer_id, by_email.customer_id, by_device.customer_id) as known_customer_id,
        case
            when events.user_id is not null then 'user_id'
            when events.email is not null then 'email'
            when events.anonymous_id is not null then 'anonymous_id'
        end as provisional_type,
        coalesce(events.user_id, events.email, events.anonymous_id) as provisional_value
    from events
    left join identifiers as by_user
        on by_user.identifier_type = 'user_id' and by_user.identifier_value = events.user_id
    left join identifiers as by_email
        on by_email.identifier_type = 'email' and by_email.identifier_value = events.email
    left join identifiers as by_device
        on by_device.identifier_type = 'anonymous_id' and by_device.identifier_value = events.anonymous_id
)

select
    cast(message_id as varchar) as message_id,
    cast(event_name as varchar) as event_name,
    cast(event_at as timestamp) as event_at,
    cast(coalesce(
        known_customer_id,
        'cus_' || substr({{ identity_node_key('provisional_type', 'provisional_value') }}, 2, 16)
    ) as varchar) as customer_id,
    cast(known_customer_id is null as boolean) as is_provisional,
    cast(email as varchar) as email,
    cast(nullif(trim(first_name), '') as varchar) as first_name,
    cast(timezone as varchar) as timezone,
    cast(cart_id as varchar) as cart_id,
    cast(order_id as varchar) as order_id,
    cast(product_id as varchar) as product_id,
    cast(product_category as varchar) as product_category,
    cast(price as decimal(12, 2)) as price,
    cast(user_id as varchar) as user_id,
    cast(anonymous_id as varchar) as anonymous_id,
    cast(loaded_at as timestamp) as loaded_at
from resolved
where provisional_value is not null

-- CDP events with the customer they belong to: by userId, else anonymousId, else traits.email.
-- Events of anonymous-only visitors keep a null customer_id.
with events as (
    select * from {{ ref('stg_cdp__events') }}
),

identifiers as (
    select * from {{ ref('int_identifiers_customers') }}
)

select
    coalesce(by_user.customer_id, by_device.customer_id, by_email.customer_id) as customer_id,
    events.*
from events
left join identifiers as by_user
    on by_user.identifier_type = 'user_id' and by_user.identifier_value = events.user_id
left join identifiers as by_device
    on by_device.identifier_type = 'anonymous_id' and by_device.identifier_value = events.anonymous_id
left join identifiers as by_email
    on by_email.identifier_type = 'email' and by_email.identifier_value = {{ normalized_email("events.email") }}

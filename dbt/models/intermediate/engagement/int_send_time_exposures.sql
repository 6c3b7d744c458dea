-- Send-time optimization's unit of evidence (docs/design/predictive.md): one row per delivered
-- provider message, with the local day of week and hour it was delivered at and whether the customer
-- responded within var('send_time_response_hours') of delivery - a human open or a click. Machine
-- opens (Apple Mail Privacy Protection and other prefetchers) never count; a click counts even when
-- the only open was a machine's. Settled once that window has passed as of MAILROOM_AS_OF (or now):
-- before, a missing response is not yet a non-response.
with events as (
    select customer_id, provider_message_id, event_type, event_at, local_event_at, is_machine_open
    from {{ ref('int_email_events_resolved') }}
    where provider_message_id is not null
),

deliveries as (
    select
        customer_id,
        provider_message_id,
        min(event_at) as delivered_at,
        min(local_event_at) as local_delivered_at
    from events
    where event_type = 'delivered'
    group by customer_id, provider_message_id
),

responses as (
    select
        deliveries.customer_id,
        deliveries.provider_message_id
    from deliveries
    join events
        on events.customer_id = deliveries.customer_id
        and events.provider_message_id = deliveries.provider_message_id
        and events.event_at >= deliveries.delivered_at
        and events.event_at
            <= deliveries.delivered_at + interval '{{ var("send_time_response_hours") }} hours'
    where events.event_type = 'click'
        or (events.event_type = 'open' and not events.is_machine_open)
    group by deliveries.customer_id, deliveries.provider_message_id
)

select
    deliveries.customer_id,
    deliveries.provider_message_id,
    deliveries.delivered_at,
    {{ local_day_of_week('deliveries.local_delivered_at') }} as local_dow,
    cast(extract(hour from deliveries.local_delivered_at) as integer) as local_hour,
    responses.provider_message_id is not null as is_responded,
    deliveries.delivered_at
    <= {{ as_of_timestamp() }} - interval '{{ var("send_time_response_hours") }} hours' as is_settled
from deliveries
left join responses
    on responses.customer_id = deliveries.customer_id
    and responses.provider_message_id = deliveries.provider_message_id

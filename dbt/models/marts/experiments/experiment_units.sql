-- One row per experiment unit: a customer in a campaign run, in a variant or the holdout, with the
-- outcomes the readouts compare. Outcomes count by assignment (intent to treat): a unit whose message
-- was suppressed at send time stays in its arm with no delivery, as a holdout unit gets none.
-- Conversions and revenue are orders within var('conversion_window_hours') from when the message went
-- out (for the holdout and unsent messages, when it was planned to), counted for every arm alike;
-- the remainder of a roll-out experiment enters once the winner is decided.
{%- set window = var('conversion_window_hours') %}

with units as (
    select campaign_id, run_key, customer_id, arm, phase, anchor_at, assigned_at, send_time_arm
    from {{ ref('stg_ops__campaign_assignments') }}
    where arm is not null
),

exposed as (
    select
        units.*,
        messages.message_id,
        sends.message_id is not null as is_sent,
        coalesce(sends.sent_at, units.anchor_at) as window_start_at
    from units
    left join {{ ref('stg_ops__campaign_messages') }} as messages
        on messages.campaign_id = units.campaign_id
        and messages.run_key = units.run_key
        and messages.customer_id = units.customer_id
    left join {{ ref('int_email_sends') }} as sends on sends.message_id = messages.message_id
),

engagement as (
    select
        message_id,
        max(case when event_type = 'delivered' then 1 else 0 end) as delivered,
        max(case when event_type = 'open' and not is_machine_open then 1 else 0 end) as opened,
        max(case when event_type = 'click' then 1 else 0 end) as clicked
    from {{ ref('int_email_events_attributed') }}
    where message_id is not null
    group by message_id
),

orders as (
    select customer_id, event_at as ordered_at, revenue
    from {{ ref('int_cdp_events_resolved') }}
    where event_name = 'Order Completed' and customer_id is not null
),

conversions as (
    select
        exposed.campaign_id,
        exposed.run_key,
        exposed.customer_id,
        count(*) as orders,
        sum(coalesce(orders.revenue, 0)) as revenue
    from exposed
    join orders
        on orders.customer_id = exposed.customer_id
        and orders.ordered_at >= exposed.window_start_at
        and orders.ordered_at < exposed.window_start_at + interval '{{ window }} hours'
    group by exposed.campaign_id, exposed.run_key, exposed.customer_id
)

select
    cast(exposed.campaign_id as varchar) as campaign_id,
    cast(exposed.run_key as varchar) as run_key,
    cast(exposed.customer_id as varchar) as customer_id,
    cast(exposed.arm as varchar) as arm,
    cast(exposed.phase as varchar) as phase,
    cast(exposed.arm = 'holdout' as boolean) as is_holdout,
    cast(exposed.send_time_arm as varchar) as send_time_arm,
    cast(exposed.message_id as varchar) as message_id,
    cast(exposed.assigned_at as timestamp) as assigned_at,
    cast(exposed.window_start_at as timestamp) as window_start_at,
    cast(exposed.is_sent as boolean) as is_sent,
    cast(coalesce(engagement.delivered, 0) = 1 as boolean) as is_delivered,
    cast(coalesce(engagement.opened, 0) = 1 as boolean) as is_opened,
    cast(coalesce(engagement.clicked, 0) = 1 as boolean) as is_clicked,
    cast(conversions.orders is not null as boolean) as is_converted,
    cast(coalesce(conversions.orders, 0) as integer) as orders,
    cast(coalesce(conversions.revenue, 0) as decimal(14, 2)) as revenue
from exposed
left join engagement on engagement.message_id = exposed.message_id
left join conversions
    on conversions.campaign_id = exposed.campaign_id
    and conversions.run_key = exposed.run_key
    and conversions.customer_id = exposed.customer_id

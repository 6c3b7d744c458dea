-- One row per message a provider accepted, with what became of it: the base every email metric
-- counts from, so each rate divides counts of the same messages. Events count once per message however
-- often they happened. Mailroom's one-click unsubscribe links name the campaign and customer, not the
-- message, so such an unsubscribe goes to the customer's latest message of that campaign sent at or
-- before it (as in campaign_performance).
with sends as (
    select * from {{ ref('fct_email_sends') }}
),

message_events as (
    select message_id, 1 as is_delivered, 0 as is_human_opened, 0 as is_clicked, 0 as is_hard_bounced,
        0 as is_soft_bounced, 0 as is_spam_reported, 0 as is_unsubscribed
    from {{ ref('fct_email_deliveries') }}
    union all
    select message_id, 0, 1, 0, 0, 0, 0, 0 from {{ ref('fct_email_opens') }} where not is_machine_open
    union all
    select message_id, 0, 0, 1, 0, 0, 0, 0 from {{ ref('fct_email_clicks') }}
    union all
    select message_id, 0, 0, 0, 1, 0, 0, 0 from {{ ref('fct_email_bounces') }} where is_hard_bounce
    union all
    select message_id, 0, 0, 0, 0, 1, 0, 0 from {{ ref('fct_email_bounces') }} where not is_hard_bounce
    union all
    select message_id, 0, 0, 0, 0, 0, 1, 0 from {{ ref('fct_email_spam_reports') }}
    union all
    select message_id, 0, 0, 0, 0, 0, 0, 1 from {{ ref('fct_email_unsubscribes') }} where message_id is not null
    union all
    select message_id, 0, 0, 0, 0, 0, 0, 1 from (
        select
            sends.message_id,
            row_number() over (
                partition by unsubscribes.unsubscribe_id order by sends.sent_at desc, sends.message_id desc
            ) as recency
        from {{ ref('fct_email_unsubscribes') }} as unsubscribes
        join sends
            on sends.campaign_id = unsubscribes.campaign_id
            and sends.customer_id = unsubscribes.customer_id
            and sends.sent_at <= unsubscribes.unsubscribed_at
        where unsubscribes.message_id is null
    ) as link_unsubscribes
    where recency = 1
),

per_message as (
    select
        message_id,
        max(is_delivered) as is_delivered,
        max(is_human_opened) as is_human_opened,
        max(is_clicked) as is_clicked,
        max(is_hard_bounced) as is_hard_bounced,
        max(is_soft_bounced) as is_soft_bounced,
        max(is_spam_reported) as is_spam_reported,
        max(is_unsubscribed) as is_unsubscribed
    from message_events
    where message_id is not null
    group by message_id
),

conversions as (
    select message_id, count(*) as orders, sum(revenue) as revenue
    from {{ ref('fct_email_conversions') }}
    group by message_id
)

select
    cast(sends.message_id as varchar) as message_id,
    cast(sends.customer_id as varchar) as customer_id,
    cast(sends.campaign_id as varchar) as campaign_id,
    cast(sends.run_key as varchar) as run_key,
    cast(coalesce(sends.variant_id, 'none') as varchar) as variant_id,
    cast(coalesce(sends.segment_key, 'unknown') as varchar) as segment_key,
    cast(sends.destination as varchar) as destination,
    cast(sends.sent_at as timestamp) as sent_at,
    cast(sends.sent_at as date) as sent_date,
    cast(coalesce(per_message.is_delivered, 0) = 1 as boolean) as is_delivered,
    cast(coalesce(per_message.is_human_opened, 0) = 1 as boolean) as is_human_opened,
    cast(coalesce(per_message.is_clicked, 0) = 1 as boolean) as is_clicked,
    cast(coalesce(per_message.is_hard_bounced, 0) = 1 as boolean) as is_hard_bounced,
    cast(coalesce(per_message.is_soft_bounced, 0) = 1 and coalesce(per_message.is_hard_bounced, 0) = 0
        as boolean) as is_soft_bounced,
    cast(coalesce(per_message.is_spam_reported, 0) = 1 as boolean) as is_spam_reported,
    cast(coalesce(per_message.is_unsubscribed, 0) = 1 as boolean) as is_unsubscribed,
    cast(conversions.message_id is not null as boolean) as is_converted,
    cast(coalesce(conversions.orders, 0) as integer) as orders,
    cast(coalesce(conversions.revenue, 0) as decimal(16, 2)) as revenue
from sends
left join per_message on per_message.message_id = sends.message_id
left join conversions on conversions.message_id = sends.message_id

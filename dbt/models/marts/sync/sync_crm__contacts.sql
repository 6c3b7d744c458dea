-- What the CRM should know about each contact with an email address: the reverse-ETL sync
-- (reverse_etl/sync) sends only rows that changed since the CRM last acknowledged them.
with customers as (
    select customer_id, email from {{ ref('dim_customers') }} where email is not null
),

as_of as (
    select {{ as_of_timestamp() }} as as_of_at
),

sends as (
    select
        sends.customer_id,
        max(sends.sent_at) as last_sent_at,
        count(case when sends.sent_at >= as_of.as_of_at - interval '30 days' then 1 end) as sends_30d,
        count(case when sends.sent_at >= as_of.as_of_at - interval '90 days' then 1 end) as sends_90d
    from {{ ref('fct_email_sends') }} as sends
    cross join as_of
    group by sends.customer_id
),

last_send as (
    select customer_id, campaign_id, variant_id,
        row_number() over (partition by customer_id order by sent_at desc, message_id desc) as recency
    from {{ ref('fct_email_sends') }}
),

opens as (
    select
        opens.customer_id,
        max(opens.opened_at) as last_opened_at,
        count(distinct case when opens.opened_at >= as_of.as_of_at - interval '30 days' then opens.message_id end) as opens_30d,
        count(distinct case when opens.opened_at >= as_of.as_of_at - interval '90 days' then opens.message_id end) as opens_90d
    from {{ ref('fct_email_opens') }} as opens
    cross join as_of
    where not opens.is_machine_open
    group by opens.customer_id
),

clicks as (
    select
        clicks.customer_id,
        max(clicks.clicked_at) as last_clicked_at,
        count(distinct case when clicks.clicked_at >= as_of.as_of_at - interval '30 days' then clicks.message_id end) as clicks_30d,
        count(distinct case when clicks.clicked_at >= as_of.as_of_at - interval '90 days' then clicks.message_id end) as clicks_90d
    from {{ ref('fct_email_clicks') }} as clicks
    cross join as_of
    group by clicks.customer_id
),

unsubscribed as (
    select customer_id from {{ ref('consent_status') }} where channel = 'email' and consent_status = 'opt_out'
    union
    select customer_id from {{ ref('fct_email_unsubscribes') }}
),

bounced as (
    select distinct customer_id from {{ ref('fct_email_bounces') }} where is_hard_bounce
)

select
    cast(customers.customer_id as varchar) as customer_id,
    cast(customers.email as varchar) as email,
    cast(sends.last_sent_at as timestamp) as last_sent_at,
    cast(opens.last_opened_at as timestamp) as last_opened_at,
    cast(clicks.last_clicked_at as timestamp) as last_clicked_at,
    cast(coalesce(sends.sends_30d, 0) as integer) as sends_30d,
    cast(coalesce(opens.opens_30d, 0) as integer) as opens_30d,
    cast(coalesce(clicks.clicks_30d, 0) as integer) as clicks_30d,
    cast(coalesce(sends.sends_90d, 0) as integer) as sends_90d,
    cast(coalesce(opens.opens_90d, 0) as integer) as opens_90d,
    cast(coalesce(clicks.clicks_90d, 0) as integer) as clicks_90d,
    cast(features.engagement_score as integer) as engagement_score,
    cast(unsubscribed.customer_id is not null as boolean) as is_unsubscribed,
    cast(bounced.customer_id is not null as boolean) as is_bounced,
    cast(features.best_send_hour as integer) as best_send_hour,
    cast(last_send.campaign_id as varchar) as last_campaign_id,
    cast(last_send.variant_id as varchar) as last_variant_id
from customers
left join sends on sends.customer_id = customers.customer_id
left join last_send on last_send.customer_id = customers.customer_id and last_send.recency = 1
left join opens on opens.customer_id = customers.customer_id
left join clicks on clicks.customer_id = customers.customer_id
left join {{ ref('customer_features') }} as features on features.customer_id = customers.customer_id
left join unsubscribed on unsubscribed.customer_id = customers.customer_id
left join bounced on bounced.customer_id = customers.customer_id

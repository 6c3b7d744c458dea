-- The marketing funnel per day the messages were sent, campaign, variant, segment and destination:
-- each count is of messages (once each however many events they caused), each rate divides counts of
-- the same messages, so a day's rates settle as its engagement arrives. Rates are null where their
-- denominator is 0.
with outcomes as (
    select * from {{ ref('email_message_outcomes') }}
),

counted as (
    select
        sent_date,
        campaign_id,
        variant_id,
        segment_key,
        destination,
        count(*) as sends,
        sum(case when is_delivered then 1 else 0 end) as deliveries,
        sum(case when is_human_opened then 1 else 0 end) as human_opens,
        sum(case when is_clicked then 1 else 0 end) as clicks,
        sum(case when is_unsubscribed then 1 else 0 end) as unsubscribes,
        sum(case when is_hard_bounced then 1 else 0 end) as hard_bounces,
        sum(case when is_soft_bounced then 1 else 0 end) as soft_bounces,
        sum(case when is_spam_reported then 1 else 0 end) as spam_complaints,
        sum(case when is_converted then 1 else 0 end) as conversions,
        sum(revenue) as revenue
    from outcomes
    group by sent_date, campaign_id, variant_id, segment_key, destination
)

select
    cast(sent_date as date) as sent_date,
    cast(campaign_id as varchar) as campaign_id,
    cast(variant_id as varchar) as variant_id,
    cast(segment_key as varchar) as segment_key,
    cast(destination as varchar) as destination,
    cast(sends as integer) as sends,
    cast(deliveries as integer) as deliveries,
    cast(human_opens as integer) as human_opens,
    cast(clicks as integer) as clicks,
    cast(unsubscribes as integer) as unsubscribes,
    cast(hard_bounces as integer) as hard_bounces,
    cast(soft_bounces as integer) as soft_bounces,
    cast(spam_complaints as integer) as spam_complaints,
    cast(conversions as integer) as conversions,
    cast(revenue as decimal(16, 2)) as revenue,
    {{ rate('deliveries', 'sends') }} as delivery_rate,
    {{ rate('human_opens', 'deliveries') }} as open_rate,
    {{ rate('clicks', 'deliveries') }} as click_rate,
    {{ rate('clicks', 'human_opens') }} as click_to_open_rate,
    {{ rate('unsubscribes', 'deliveries') }} as unsubscribe_rate,
    {{ rate('hard_bounces', 'sends') }} as hard_bounce_rate,
    {{ rate('soft_bounces', 'sends') }} as soft_bounce_rate,
    {{ rate('spam_complaints', 'deliveries') }} as spam_complaint_rate,
    {{ rate('conversions', 'deliveries') }} as conversion_rate,
    {{ rate('revenue', 'deliveries') }} as revenue_per_delivered
from counted

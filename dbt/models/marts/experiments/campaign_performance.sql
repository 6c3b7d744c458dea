-- One row per campaign run, arm (variant or holdout) and segment: how many customers each got, and
-- what they did. Built on the experiment units (assignment, intent to treat), so the holdout sits
-- beside the variants with its units and conversions and no sends. Each count is of units (customers),
-- once each however many events they caused; orders and revenue are sums. The rates divide through the
-- rate macro (macros/metrics.sql: double precision, null where the denominator is 0); they are
-- defined once in _campaign_performance.yml, and dagster_project/experiments/performance.py holds the same
-- definitions for its totals over segments (tests hold the two against each other).
{%- set rates = [
    ('delivery_rate', 'deliveries', 'sends'),
    ('bounce_rate', 'bounces', 'sends'),
    ('open_rate', 'human_opens', 'deliveries'),
    ('click_rate', 'clicks', 'deliveries'),
    ('unsubscribe_rate', 'unsubscribes', 'deliveries'),
    ('spam_report_rate', 'spam_reports', 'deliveries'),
    ('conversion_rate', 'conversions', 'units'),
    ('revenue_per_unit', 'revenue', 'units'),
] %}

with units as (
    select * from {{ ref('experiment_units') }}
),

-- The segment a unit was counted in: its message's (ops.campaign_messages, the segment the content
-- was written for when it was rendered), else, for the holdout and customers suppressed before
-- rendering, the customer's segment in customer_segments, which is where the messages step takes it
-- from (campaign_candidates). ops.campaign_assignments does not record it, so for such units of an
-- older run it is the segment they are in now.
segmented as (
    select
        units.*,
        coalesce(messages.segment_key, segments.segment_key, 'unknown') as segment_key
    from units
    left join {{ ref('stg_ops__campaign_messages') }} as messages on messages.message_id = units.message_id
    left join {{ ref('customer_segments') }} as segments on segments.customer_id = units.customer_id
),

-- Bounces, spam reports and the provider's unsubscribes name their message.
message_events as (
    select message_id, 1 as is_bounced, 0 as is_hard_bounced, 0 as is_spam_reported, 0 as is_unsubscribed
    from {{ ref('fct_email_bounces') }}
    union all
    select message_id, 0, 1, 0, 0 from {{ ref('fct_email_bounces') }} where is_hard_bounce
    union all
    select message_id, 0, 0, 1, 0 from {{ ref('fct_email_spam_reports') }}
    union all
    select message_id, 0, 0, 0, 1 from {{ ref('fct_email_unsubscribes') }} where message_id is not null
),

per_message as (
    select
        message_id,
        max(is_bounced) as is_bounced,
        max(is_hard_bounced) as is_hard_bounced,
        max(is_spam_reported) as is_spam_reported,
        max(is_unsubscribed) as is_unsubscribed
    from message_events
    where message_id is not null
    group by message_id
),

-- Mailroom's one-click links name the campaign and customer, not the message: such an unsubscribe
-- goes to the customer's latest message of that campaign sent at or before it.
link_unsubscribes as (
    select
        units.campaign_id,
        units.run_key,
        units.customer_id,
        row_number() over (
            partition by unsubscribes.unsubscribe_id
            order by units.window_start_at desc, units.run_key desc
        ) as recency
    from {{ ref('fct_email_unsubscribes') }} as unsubscribes
    join units
        on units.campaign_id = unsubscribes.campaign_id
        and units.customer_id = unsubscribes.customer_id
        and units.is_sent
        and units.window_start_at <= unsubscribes.unsubscribed_at
    where unsubscribes.message_id is null
),

link_unsubscribed as (
    select distinct campaign_id, run_key, customer_id
    from link_unsubscribes
    where recency = 1
),

outcomes as (
    select
        segmented.campaign_id,
        segmented.run_key,
        segmented.arm,
        segmented.is_holdout,
        segmented.segment_key,
        case when segmented.is_sent then 1 else 0 end as sent,
        case when segmented.is_delivered then 1 else 0 end as delivered,
        case when segmented.is_opened then 1 else 0 end as opened,
        case when segmented.is_clicked then 1 else 0 end as clicked,
        case when segmented.is_converted then 1 else 0 end as converted,
        segmented.orders,
        segmented.revenue,
        case when per_message.is_unsubscribed = 1 or link_unsubscribed.customer_id is not null
            then 1 else 0 end as unsubscribed,
        coalesce(per_message.is_bounced, 0) as bounced,
        coalesce(per_message.is_hard_bounced, 0) as hard_bounced,
        coalesce(per_message.is_spam_reported, 0) as spam_reported
    from segmented
    left join per_message on per_message.message_id = segmented.message_id
    left join link_unsubscribed
        on link_unsubscribed.campaign_id = segmented.campaign_id
        and link_unsubscribed.run_key = segmented.run_key
        and link_unsubscribed.customer_id = segmented.customer_id
),

counted as (
    select
        campaign_id,
        run_key,
        arm,
        is_holdout,
        segment_key,
        count(*) as units,
        sum(sent) as sends,
        sum(delivered) as deliveries,
        sum(opened) as human_opens,
        sum(clicked) as clicks,
        sum(converted) as conversions,
        sum(orders) as orders,
        sum(revenue) as revenue,
        sum(unsubscribed) as unsubscribes,
        sum(bounced) as bounces,
        sum(hard_bounced) as hard_bounces,
        sum(spam_reported) as spam_reports
    from outcomes
    group by campaign_id, run_key, arm, is_holdout, segment_key
)

select
    cast(campaign_id as varchar) as campaign_id,
    cast(run_key as varchar) as run_key,
    cast(arm as varchar) as arm,
    cast(is_holdout as boolean) as is_holdout,
    cast(segment_key as varchar) as segment_key,
    cast(units as integer) as units,
    cast(sends as integer) as sends,
    cast(deliveries as integer) as deliveries,
    cast(human_opens as integer) as human_opens,
    cast(clicks as integer) as clicks,
    cast(conversions as integer) as conversions,
    cast(orders as integer) as orders,
    cast(revenue as decimal(16, 2)) as revenue,
    cast(unsubscribes as integer) as unsubscribes,
    cast(bounces as integer) as bounces,
    cast(hard_bounces as integer) as hard_bounces,
    cast(spam_reports as integer) as spam_reports,
    {%- for name, numerator, denominator in rates %}
    {{ rate(numerator, denominator) }} as {{ name }}
    {{- "," if not loop.last }}
    {%- endfor %}
from counted

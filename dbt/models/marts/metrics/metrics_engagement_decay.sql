-- Engagement decay per segment: the open and click rates of customers' 1st, 2nd, 3rd... message
-- (across campaigns, in the order they were sent), up to var engagement_decay_max_message_number,
-- which also holds every later message. Falling rates show mail fatigue in that segment.
{%- set last_step = var('engagement_decay_max_message_number') %}
with numbered as (
    select
        segment_key,
        is_delivered,
        is_human_opened,
        is_clicked,
        row_number() over (partition by customer_id order by sent_at, message_id) as message_number
    from {{ ref('email_message_outcomes') }}
),

counted as (
    select
        segment_key,
        case when message_number >= {{ last_step }} then {{ last_step }} else message_number end as message_number,
        count(*) as sends,
        sum(case when is_delivered then 1 else 0 end) as deliveries,
        sum(case when is_human_opened then 1 else 0 end) as human_opens,
        sum(case when is_clicked then 1 else 0 end) as clicks
    from numbered
    group by segment_key, case when message_number >= {{ last_step }} then {{ last_step }} else message_number end
)

select
    cast(segment_key as varchar) as segment_key,
    cast(message_number as integer) as message_number,
    cast(sends as integer) as sends,
    cast(deliveries as integer) as deliveries,
    cast(human_opens as integer) as human_opens,
    cast(clicks as integer) as clicks,
    {{ rate('human_opens', 'deliveries') }} as open_rate,
    {{ rate('clicks', 'deliveries') }} as click_rate
from counted

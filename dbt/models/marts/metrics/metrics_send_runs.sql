-- Throughput of each campaign run: messages rendered and how fast (first to last rendered_at), and
-- messages handed over and how fast (first claim to last answer), per second of that span. A run whose
-- span is under a second has no rate (null): one instant says nothing about speed.
with rendered as (
    select campaign_id, run_key, count(*) as messages_rendered,
        {{ elapsed_seconds('min(rendered_at)', 'max(rendered_at)') }} as render_seconds
    from {{ ref('stg_ops__campaign_messages') }}
    group by campaign_id, run_key
),

handed_over as (
    select campaign_id, run_key, count(*) as messages_handed_over,
        min(sending_at) as first_claimed_at,
        {{ elapsed_seconds('min(sending_at)', 'max(finished_at)') }} as handover_seconds
    from {{ ref('stg_ops__send_ledger') }}
    where send_state = 'accepted' and sending_at is not null
    group by campaign_id, run_key
)

select
    cast(rendered.campaign_id as varchar) as campaign_id,
    cast(rendered.run_key as varchar) as run_key,
    cast(rendered.messages_rendered as integer) as messages_rendered,
    cast(rendered.render_seconds as double precision) as render_seconds,
    {{ rate('rendered.messages_rendered', 'case when rendered.render_seconds >= 1 then rendered.render_seconds end') }}
        as rendered_per_second,
    cast(coalesce(handed_over.messages_handed_over, 0) as integer) as messages_handed_over,
    cast(handed_over.first_claimed_at as timestamp) as first_claimed_at,
    cast(handed_over.handover_seconds as double precision) as handover_seconds,
    {{ rate('handed_over.messages_handed_over',
            'case when handed_over.handover_seconds >= 1 then handed_over.handover_seconds end') }}
        as handed_over_per_second
from rendered
left join handed_over on handed_over.campaign_id = rendered.campaign_id and handed_over.run_key = rendered.run_key

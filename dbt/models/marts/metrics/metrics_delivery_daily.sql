-- Hand-over to the destinations per day, campaign, destination and outcome: messages, attempts and
-- retries (attempts after the first), the error class of those that failed (the ledger's reason), and
-- hand-over latency percentiles (from the moment a run claimed a message to the provider's answer).
-- A message still planned or in flight is counted on the day it was planned, with no destination yet.
with ledger as (
    select
        cast(coalesce(finished_at, sending_at, planned_at) as date) as activity_date,
        campaign_id,
        coalesce(destination, 'none') as destination,
        send_state,
        case when send_state = 'failed' then coalesce(send_reason, 'unknown') else 'none' end as error_class,
        coalesce(attempts, 0) as attempts,
        case when send_state = 'accepted' and sending_at is not null and finished_at is not null
            then {{ elapsed_seconds('sending_at', 'finished_at') }} end as handover_seconds
    from {{ ref('stg_ops__send_ledger') }}
)

select
    cast(activity_date as date) as activity_date,
    cast(campaign_id as varchar) as campaign_id,
    cast(destination as varchar) as destination,
    cast(send_state as varchar) as send_state,
    cast(error_class as varchar) as error_class,
    cast(count(*) as integer) as messages,
    cast(sum(attempts) as integer) as attempts,
    cast(sum(case when attempts > 1 then attempts - 1 else 0 end) as integer) as retries,
    {{ percentile(0.5, 'handover_seconds') }} as handover_p50_seconds,
    {{ percentile(0.95, 'handover_seconds') }} as handover_p95_seconds
from ledger
group by activity_date, campaign_id, destination, send_state, error_class

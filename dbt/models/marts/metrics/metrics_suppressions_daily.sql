-- Who was not mailed, and why, per day, campaign and stage: "audience" when the campaign's run
-- left a candidate out (ops.campaign_suppressions), "pre_send" when the last look before sending
-- stopped a rendered message (the send ledger). is_consent marks the reasons that are about consent
-- (var consent_suppression_reasons), which the compliance dashboard reports as consent rejections.
with suppressed as (
    select cast(recorded_at as date) as activity_date, campaign_id, 'audience' as stage,
        suppression_reason as reason
    from {{ ref('stg_ops__campaign_suppressions') }}
    union all
    select cast(coalesce(finished_at, planned_at) as date), campaign_id, 'pre_send', send_reason
    from {{ ref('stg_ops__send_ledger') }}
    where send_state = 'suppressed'
)

select
    cast(activity_date as date) as activity_date,
    cast(campaign_id as varchar) as campaign_id,
    cast(stage as varchar) as stage,
    cast(coalesce(reason, 'unknown') as varchar) as reason,
    cast(coalesce(reason, 'unknown') in (
        {%- for consent_reason in var('consent_suppression_reasons') %}
        '{{ consent_reason }}'{{ "," if not loop.last }}
        {%- endfor %}) as boolean) as is_consent,
    cast(count(*) as integer) as customers
from suppressed
group by activity_date, campaign_id, stage, coalesce(reason, 'unknown')

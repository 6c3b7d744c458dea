-- Opt-outs per day and source: email consent withdrawn through a capture source (preference center,
-- CRM, support...; Mailroom's one-click links read 'unsubscribe_link'), the provider's unsubscribe and
-- group-unsubscribe events, and spam complaints, which suppress the address too.
with opt_outs as (
    select
        cast(occurred_at as date) as opted_out_date,
        case when capture_source like 'unsubscribe_link:%' then 'unsubscribe_link'
            else coalesce(capture_source, 'unknown') end as source
    from {{ ref('stg_consent__events') }}
    where channel = 'email' and consent_status = 'opt_out'
    union all
    select cast(unsubscribed_at as date), channel
    from {{ ref('fct_email_unsubscribes') }}
    where channel <> 'unsubscribe_link'
    union all
    select cast(reported_at as date), 'spam_complaint'
    from {{ ref('fct_email_spam_reports') }}
)

select
    cast(opted_out_date as date) as opted_out_date,
    cast(source as varchar) as source,
    cast(count(*) as integer) as opt_outs
from opt_outs
group by opted_out_date, source

-- What the receiving mail servers answered, per day, campaign, provider event and SMTP status code
-- (SendGrid's delivered, deferred, bounce and dropped events; the status is e.g. 250, 4.2.2, 5.1.1):
-- the ops dashboard's response-code heatmap. Engagement events (opens, clicks) carry no status.
select
    cast(event_at as date) as event_date,
    cast(coalesce(campaign_id, 'unknown') as varchar) as campaign_id,
    cast(event_type as varchar) as event_type,
    cast(coalesce(nullif(trim(smtp_status), ''), 'none') as varchar) as smtp_status,
    cast(count(*) as integer) as events
from {{ ref('stg_esp__events') }}
where event_type in ('processed', 'delivered', 'deferred', 'bounce', 'dropped')
group by cast(event_at as date), coalesce(campaign_id, 'unknown'), event_type,
    coalesce(nullif(trim(smtp_status), ''), 'none')

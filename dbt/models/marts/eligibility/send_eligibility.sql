-- Whether each customer may receive marketing email, and if not, why (one reason code, the first
-- rule that fails, in this order):
--   no_email               no linked email address
--   hard_bounced           the provider reported a hard bounce for the address
--   spam_complaint         the customer reported a message as spam
--   opted_out              the latest consent change for email is an opt-out, or the provider
--                          reported an unsubscribe
--   no_explicit_consent    EU, UK (GDPR) and OTHER need an explicit opt-in (lawful basis consent)
--   no_casl_consent        CA (CASL) needs express consent or implied consent ...
--   casl_implied_expired   ... and implied consent lasts 2 years after a purchase, 6 months after an inquiry
--   sunset                 a journey stopped marketing mail (ops.marketing_suppressions) and the customer
--                          has neither ordered nor clicked since (not a consent reason)
-- US customers (CAN-SPAM) may be mailed until they opt out.
with customers as (
    select * from {{ ref('dim_customers') }}
),

email_consent as (
    select * from {{ ref('consent_status') }} where channel = 'email'
),

identifiers as (
    select * from {{ ref('int_identifiers_customers') }}
    where identifier_type = 'email'
),

provider_suppressions as (
    select
        identifiers.customer_id,
        max(case when esp.event_type = 'bounce' and coalesce(esp.bounce_type, 'bounce') = 'bounce' then 1 else 0 end) as has_hard_bounce,
        max(case when esp.event_type = 'spamreport' then 1 else 0 end) as has_spam_report,
        max(case when esp.event_type in ('unsubscribe', 'group_unsubscribe') then 1 else 0 end) as has_unsubscribe,
        max(case when esp.event_type = 'click' then esp.event_at end) as last_click_at
    from {{ ref('stg_esp__events') }} as esp
    join identifiers on identifiers.identifier_value = {{ normalized_email("esp.email") }}
    where esp.event_type in ('bounce', 'spamreport', 'unsubscribe', 'group_unsubscribe', 'click')
    group by identifiers.customer_id
),

last_purchase as (
    select customer_id, max(event_at) as last_purchase_at
    from {{ ref('int_cdp_events_resolved') }}
    where event_name = 'Order Completed' and customer_id is not null
    group by customer_id
),

-- Sunset by a journey (the same rule as reverse_etl/presend.py): lifted by an order or a click after it.
sunsets as (
    select customer_id, max(recorded_at) as sunset_at
    from {{ marketing_suppressions() }} as suppressions
    where reason = 'sunset'
    group by customer_id
),

-- CASL implied consent: from a purchase (2 years) or an inquiry (6 months), whichever lasts longer.
implied_consent as (
    select
        customers.customer_id,
        greatest(
            coalesce(last_purchase.last_purchase_at + interval '2 years', cast('1900-01-01' as timestamp)),
            case
                when email_consent.lawful_basis = 'implied' and email_consent.capture_source = 'checkout'
                    then email_consent.changed_at + interval '2 years'
                when email_consent.lawful_basis = 'implied'
                    then email_consent.changed_at + interval '6 months'
                else cast('1900-01-01' as timestamp)
            end
        ) as implied_until
    from customers
    left join last_purchase on last_purchase.customer_id = customers.customer_id
    left join email_consent on email_consent.customer_id = customers.customer_id
),

evaluated as (
    select
        customers.customer_id,
        customers.email,
        customers.jurisdiction,
        email_consent.consent_status,
        email_consent.lawful_basis,
        email_consent.capture_source,
        email_consent.changed_at as consent_changed_at,
        case when implied_consent.implied_until > cast('1900-01-01' as timestamp)
            then implied_consent.implied_until end as casl_implied_until,
        case
            when customers.email is null then 'no_email'
            when coalesce(provider_suppressions.has_hard_bounce, 0) = 1 then 'hard_bounced'
            when coalesce(provider_suppressions.has_spam_report, 0) = 1 then 'spam_complaint'
            -- an unsubscribe at the provider withdraws consent just like an opt-out
            when email_consent.consent_status = 'opt_out'
                or coalesce(provider_suppressions.has_unsubscribe, 0) = 1 then 'opted_out'
            when customers.jurisdiction in ('EU', 'UK', 'OTHER')
                -- coalesce: a customer without any consent change has not opted in.
                and not (coalesce(email_consent.consent_status, '') = 'opt_in'
                         and coalesce(email_consent.lawful_basis, '') = 'consent')
                then 'no_explicit_consent'
            when customers.jurisdiction = 'CA'
                and coalesce(email_consent.lawful_basis, '') <> 'consent'
                and implied_consent.implied_until <= cast('1900-01-01' as timestamp)
                then 'no_casl_consent'
            when customers.jurisdiction = 'CA'
                and coalesce(email_consent.lawful_basis, '') <> 'consent'
                and implied_consent.implied_until < {{ as_of_timestamp() }}
                then 'casl_implied_expired'
            when sunsets.sunset_at is not null
                and coalesce(last_purchase.last_purchase_at, cast('1900-01-01' as timestamp)) <= sunsets.sunset_at
                and coalesce(provider_suppressions.last_click_at, cast('1900-01-01' as timestamp)) <= sunsets.sunset_at
                then 'sunset'
        end as ineligible_reason
    from customers
    left join email_consent on email_consent.customer_id = customers.customer_id
    left join provider_suppressions on provider_suppressions.customer_id = customers.customer_id
    left join implied_consent on implied_consent.customer_id = customers.customer_id
    left join last_purchase on last_purchase.customer_id = customers.customer_id
    left join sunsets on sunsets.customer_id = customers.customer_id
)

select
    cast(customer_id as varchar) as customer_id,
    cast('email' as varchar) as channel,
    cast(email as varchar) as email,
    cast(jurisdiction as varchar) as jurisdiction,
    cast(ineligible_reason is null as boolean) as is_eligible,
    cast(ineligible_reason as varchar) as ineligible_reason,
    cast(consent_status as varchar) as consent_status,
    cast(lawful_basis as varchar) as lawful_basis,
    cast(capture_source as varchar) as consent_source,
    cast(consent_changed_at as timestamp) as consent_changed_at,
    cast(casl_implied_until as timestamp) as casl_implied_until,
    cast({{ as_of_timestamp() }} as timestamp) as evaluated_at
from evaluated

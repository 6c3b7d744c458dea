-- One row per customer: the golden record.
-- Survivorship: the CRM wins for first name, last name and phone when it has a value; every other
-- attribute (and the names and phone when the CRM has none) takes the most recent non-null value
-- across CDP events and CRM contact versions. Email is the most recently seen linked email, so a
-- placeholder or shared address never becomes anyone's email. Country decides the jurisdiction
-- (seeds/countries.csv); the timezone must be a valid IANA name, else the country's default.
with identities as (
    select * from {{ ref('customer_identities') }}
),

customers as (
    select
        customer_id,
        min(first_seen_at) as first_seen_at,
        max(case when identifier_type = 'user_id' then identifier_value end) as user_id
    from identities
    group by customer_id
),

latest_email as (
    select distinct
        customer_id,
        {{ latest_non_null('identifier_value', 'customer_id', 'last_seen_at', 'identifier_value') }} as email
    from identities
    where identifier_type = 'email'
),

latest_phone as (
    select distinct
        customer_id,
        {{ latest_non_null('identifier_value', 'customer_id', 'last_seen_at', 'identifier_value') }} as phone_e164
    from identities
    where identifier_type = 'phone'
),

timezones as (
    select * from {{ ref('iana_timezones') }}
),

-- Attributes as CDP events last reported them.
cdp_attributes as (
    select
        events.customer_id,
        nullif(trim(events.first_name), '') as first_name,
        nullif(trim(events.last_name), '') as last_name,
        upper(nullif(trim(events.country), '')) as country_code,
        timezones.timezone,
        events.event_at as observed_at,
        events.message_id as tiebreak
    from {{ ref('int_cdp_events_resolved') }} as events
    left join timezones on timezones.timezone = events.timezone
    where events.customer_id is not null
        and (events.first_name is not null or events.last_name is not null
             or events.country is not null or events.timezone is not null)
),

crm as (
    select * from {{ ref('int_crm_contacts_resolved') }}
),

-- CRM contact versions as a second stream of attribute observations.
all_attributes as (
    select customer_id, first_name, last_name, country_code, timezone, observed_at, tiebreak
    from cdp_attributes
    union all
    select customer_id, first_name, last_name, country_code, timezone, updated_at, 'crm:' || contact_id
    from crm
),

latest_attributes as (
    select distinct
        customer_id,
        {{ latest_non_null('first_name', 'customer_id', 'observed_at', 'tiebreak') }} as first_name,
        {{ latest_non_null('last_name', 'customer_id', 'observed_at', 'tiebreak') }} as last_name,
        {{ latest_non_null('country_code', 'customer_id', 'observed_at', 'tiebreak') }} as country_code,
        {{ latest_non_null('timezone', 'customer_id', 'observed_at', 'tiebreak') }} as timezone
    from all_attributes
),

crm_latest as (
    select distinct
        customer_id,
        {{ latest_non_null('first_name', 'customer_id', 'updated_at', 'contact_id') }} as first_name,
        {{ latest_non_null('last_name', 'customer_id', 'updated_at', 'contact_id') }} as last_name,
        {{ latest_non_null('phone_e164', 'customer_id', 'updated_at', 'contact_id') }} as phone_e164,
        {{ latest_non_null('lifecycle_stage', 'customer_id', 'updated_at', 'contact_id') }} as lifecycle_stage,
        min(created_at) over (partition by customer_id) as created_at
    from crm
),

purchasers as (
    select distinct customer_id
    from {{ ref('int_cdp_events_resolved') }}
    where event_name = 'Order Completed' and customer_id is not null
),

countries as (
    select * from {{ ref('countries') }}
)

select
    cast(customers.customer_id as varchar) as customer_id,
    cast(customers.user_id as varchar) as user_id,
    cast(latest_email.email as varchar) as email,
    cast(coalesce(crm_latest.first_name, latest_attributes.first_name) as varchar) as first_name,
    cast(coalesce(crm_latest.last_name, latest_attributes.last_name) as varchar) as last_name,
    cast(coalesce(crm_latest.phone_e164, latest_phone.phone_e164) as varchar) as phone_e164,
    cast(latest_attributes.country_code as varchar) as country_code,
    cast(coalesce(countries.jurisdiction, 'OTHER') as varchar) as jurisdiction,
    cast(coalesce(latest_attributes.timezone, countries.default_timezone, 'UTC') as varchar) as timezone,
    cast(coalesce(
        crm_latest.lifecycle_stage,
        case when purchasers.customer_id is not null then 'customer'
             when latest_email.email is not null then 'subscriber'
             else 'lead' end
    ) as varchar) as lifecycle_stage,
    cast(least(customers.first_seen_at, coalesce(crm_latest.created_at, customers.first_seen_at)) as timestamp) as created_at
from customers
left join latest_email on latest_email.customer_id = customers.customer_id
left join latest_phone on latest_phone.customer_id = customers.customer_id
left join latest_attributes on latest_attributes.customer_id = customers.customer_id
left join crm_latest on crm_latest.customer_id = customers.customer_id
left join purchasers on purchasers.customer_id = customers.customer_id
left join countries on countries.country_code = latest_attributes.country_code

-- One row per customer: the golden record.
-- Survivorship: the CRM wins for first name, last name and phone when it has a value; every other
-- attribute (and the names and phone when the CRM has none) takes the most recent non-null value
-- across CDP events and CRM contact versions. Email is the most recently seen linked email, so a
-- placeholder or shared address never becomes anyone's email. Country decides the jurisdiction
-- (seeds/countries.csv); the timezone must be a valid IANA name, else the country's default.
-- Birth date: the latest birthday trait that is a real calendar date (YYYY-MM-DD, optionally followed by
-- a time), from 1900 on and before the event that reported it; other values are ignored.
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

-- Birthday traits split into parts. Every cast sits behind a case that lets only well-formed text
-- through: engines may evaluate a select expression before a where clause, and '1990-02-30' or 'soon'
-- must give null, not an error.
birthday_texts as (
    select
        customer_id,
        event_at,
        message_id,
        case when {{ regex_matches('trim(birthday)', "'[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?'") }}
            then substr(trim(birthday), 1, 10) end as birthday_text
    from {{ ref('int_cdp_events_resolved') }}
    where customer_id is not null and birthday is not null
),

birthday_parts as (
    select
        *,
        cast(substr(birthday_text, 1, 4) as integer) as birth_year,
        cast(substr(birthday_text, 6, 2) as integer) as birth_month,
        cast(substr(birthday_text, 9, 2) as integer) as birth_day
    from birthday_texts
),

birthdays as (
    select
        customer_id,
        event_at,
        message_id,
        case when birth_year >= 1900
            and birth_month between 1 and 12
            and birth_day between 1 and case
                when birth_month = 2 and mod(birth_year, 4) = 0
                    and (mod(birth_year, 100) <> 0 or mod(birth_year, 400) = 0) then 29
                when birth_month = 2 then 28
                when birth_month in (4, 6, 9, 11) then 30
                else 31
            end
            then cast(birthday_text as date)
        end as birth_date
    from birthday_parts
),

latest_birthdays as (
    select distinct
        customer_id,
        {{ latest_non_null('birth_date', 'customer_id', 'event_at', 'message_id') }} as birth_date
    from birthdays
    where birth_date < cast(event_at as date)
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
    cast(least(customers.first_seen_at, coalesce(crm_latest.created_at, customers.first_seen_at)) as timestamp) as created_at,
    cast(latest_birthdays.birth_date as date) as birth_date
from customers
left join latest_email on latest_email.customer_id = customers.customer_id
left join latest_phone on latest_phone.customer_id = customers.customer_id
left join latest_attributes on latest_attributes.customer_id = customers.customer_id
left join crm_latest on crm_latest.customer_id = customers.customer_id
left join purchasers on purchasers.customer_id = customers.customer_id
left join latest_birthdays on latest_birthdays.customer_id = customers.customer_id
left join countries on countries.country_code = latest_attributes.country_code

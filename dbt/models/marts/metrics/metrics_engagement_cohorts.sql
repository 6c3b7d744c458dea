-- Retention of engagement by signup month: of the customers who signed up in a month, how many opened
-- (a human open) or clicked a message in each later month. Month 0 is the signup month; months in
-- which nobody of the cohort engaged have no row.
with customers as (
    select customer_id, cast(date_trunc('month', created_at) as date) as signup_month
    from {{ ref('dim_customers') }}
    where created_at is not null
),

cohort_sizes as (
    select signup_month, count(*) as cohort_customers
    from customers
    group by signup_month
),

engagement as (
    select customer_id, opened_at as engaged_at from {{ ref('fct_email_opens') }} where not is_machine_open
    union all
    select customer_id, clicked_at from {{ ref('fct_email_clicks') }}
),

engaged as (
    select distinct
        customers.signup_month,
        customers.customer_id,
        (extract(year from engagement.engaged_at) * 12 + extract(month from engagement.engaged_at))
        - (extract(year from customers.signup_month) * 12 + extract(month from customers.signup_month))
            as months_since_signup
    from engagement
    join customers on customers.customer_id = engagement.customer_id
)

select
    cast(engaged.signup_month as date) as signup_month,
    cast(engaged.months_since_signup as integer) as months_since_signup,
    cast(cohort_sizes.cohort_customers as integer) as cohort_customers,
    cast(count(*) as integer) as engaged_customers,
    {{ rate('count(*)', 'cohort_sizes.cohort_customers') }} as retention_rate
from engaged
join cohort_sizes on cohort_sizes.signup_month = engaged.signup_month
where engaged.months_since_signup >= 0
group by engaged.signup_month, engaged.months_since_signup, cohort_sizes.cohort_customers

-- One row per customer with everything a campaign audience selects on: the segment content is
-- written for, features, and the send-eligibility verdict. Campaign models filter this; only their
-- eligible rows receive a message, the others are reported as suppressed with their reason.
select
    customers.customer_id,
    eligibility.email,
    customers.first_name,
    customers.timezone,
    segments.segment_key,
    segments.segment_name,
    segments.lifecycle_segment,
    features.top_category,
    features.preferred_categories,
    features.best_send_hour,
    features.cart_abandoned_at,
    eligibility.is_eligible,
    eligibility.ineligible_reason
from {{ ref('dim_customers') }} as customers
join {{ ref('send_eligibility') }} as eligibility on eligibility.customer_id = customers.customer_id
join {{ ref('customer_segments') }} as segments on segments.customer_id = customers.customer_id
join {{ ref('customer_features') }} as features on features.customer_id = customers.customer_id

-- Weekly "picks for you": everyone, with recommendations by their top category.
select
    customer_id, email, first_name, timezone, segment_key, segment_name, lifecycle_segment,
    top_category, preferred_categories, best_send_hour, is_eligible, ineligible_reason
from {{ ref('campaign_candidates') }}

-- Welcome series, step 1 (journey welcome): campaign welcome_hello, sent only by that journey step.
-- Its audience is every customer: the journey decides who gets the message, this model only gives the
-- segments its content is written for. A view, as nothing reads it row by row.
{{ config(materialized='view') }}

select
    customer_id, email, first_name, timezone, segment_key, segment_name, lifecycle_segment,
    top_category, preferred_categories, best_send_hour, is_eligible, ineligible_reason
from {{ ref('campaign_candidates') }}

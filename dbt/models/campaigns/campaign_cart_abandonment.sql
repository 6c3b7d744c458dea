-- Cart abandonment: customers whose cart has been open longer than var('cart_abandonment_delay_hours')
-- but not longer than var('cart_abandonment_window_days'), and who still have products in it.
select
    candidates.customer_id, candidates.email, candidates.first_name, candidates.timezone,
    candidates.segment_key, candidates.segment_name, candidates.lifecycle_segment,
    candidates.top_category, candidates.preferred_categories, candidates.best_send_hour,
    candidates.is_eligible, candidates.ineligible_reason,
    candidates.cart_abandoned_at
from {{ ref('campaign_candidates') }} as candidates
where candidates.cart_abandoned_at
        <= {{ as_of_timestamp() }} - interval '{{ var("cart_abandonment_delay_hours") }} hours'
    and candidates.cart_abandoned_at
        > {{ as_of_timestamp() }} - interval '{{ var("cart_abandonment_window_days") }} days'
    and exists (
        select 1 from {{ ref('abandoned_cart_items') }} as items
        where items.customer_id = candidates.customer_id
    )

-- One row per consent change (opt-in or opt-out) for one channel.
select
    event_id as consent_event_id,
    user_id,
    email,
    channel,
    status as consent_status,
    status = 'opt_in' as is_opt_in,
    jurisdiction,
    lawful_basis,
    source as capture_source,
    occurred_at,
    source_file,
    loaded_at
from {{ source('raw', 'consent_events') }}

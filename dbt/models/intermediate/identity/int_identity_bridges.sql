-- Identifiers that would join different user_ids through other identifiers (an anonymous device
-- seen with one user's email and another user's login) are demoted here, so that two different
-- user_ids never end up in one customer: every identifier of a group (int_identity_groups: linkable
-- non-user identifiers connected through records) in touch with more than one user_id links nothing.
select
    node_key,
    distinct_user_ids
from {{ ref('int_identity_groups') }}
where distinct_user_ids > 1

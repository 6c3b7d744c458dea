-- The identity graph resolved: every linkable identifier with its component (customer), the connected
-- component of the links between identifiers seen in the same record, bridges left out.
--
-- Derived from int_identity_groups instead of a second connected_components() pass over all links,
-- because the groups already hold it: a record carries at most one user_id (a CDP event's userId, a
-- CRM contact's user_id), so every link of a user_id goes to the one group of that record's other
-- identifiers, and a group that is not a bridge touches at most one user_id. A user_id's component is
-- therefore itself with the groups whose one user_id it is (named after the user_id, whose node key
-- sorts first); a group without a linkable user_id is a component of its own (named after its
-- smallest node, as connected_components() names it).
with linkable as (
    select * from {{ ref('int_identifiers_classified') }}
    where resolution_status = 'linkable'
),

groups as (
    select * from {{ ref('int_identity_groups') }}
)

select
    linkable.identifier_type,
    linkable.identifier_value,
    linkable.node_key,
    case
        when linkable.identifier_type = 'user_id' then linkable.node_key
        else coalesce(user_ids.node_key, groups.group_key)
    end as component
from linkable
left join groups on groups.node_key = linkable.node_key
left join linkable as user_ids
    on user_ids.identifier_type = 'user_id'
    and user_ids.identifier_value = groups.user_id
where coalesce(groups.distinct_user_ids, 0) <= 1

-- One row per distinct identifier with the decision identity resolution takes on it:
--   placeholder            a junk value from var('identity_placeholder_values') or an all-zero id
--   shared_by_user_ids     seen with more than var('identity_max_user_ids_per_identifier') user_ids
--   linkable               may link (int_identity_bridges can still demote it)
{%- set placeholders = var('identity_placeholder_values') | map('lower') | map('replace', "'", "''") | list %}

with observations as (
    select * from {{ ref('int_identity_observations') }}
    where identifier_value is not null
),

user_ids_per_record as (
    select distinct source, record_key, identifier_value as user_id
    from observations
    where identifier_type = 'user_id'
),

identifiers as (
    select
        identifier_type,
        identifier_value,
        count(distinct source || ':' || record_key) as records,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at
    from observations
    group by identifier_type, identifier_value
),

user_ids_seen_with as (
    select
        observations.identifier_type,
        observations.identifier_value,
        count(distinct user_ids_per_record.user_id) as distinct_user_ids
    from observations
    join user_ids_per_record
        on user_ids_per_record.source = observations.source
        and user_ids_per_record.record_key = observations.record_key
    where observations.identifier_type <> 'user_id'
    group by observations.identifier_type, observations.identifier_value
)

select
    identifiers.identifier_type,
    identifiers.identifier_value,
    {{ identity_node_key('identifiers.identifier_type', 'identifiers.identifier_value') }} as node_key,
    identifiers.records,
    coalesce(user_ids_seen_with.distinct_user_ids, 0) as distinct_user_ids,
    identifiers.first_seen_at,
    identifiers.last_seen_at,
    case
        when lower(trim(identifiers.identifier_value)) in ('{{ placeholders | join("', '") }}')
            or {{ regex_matches('identifiers.identifier_value', "'[0-]+'") }}
            then 'placeholder'
        when coalesce(user_ids_seen_with.distinct_user_ids, 0) > {{ var('identity_max_user_ids_per_identifier') }}
            then 'shared_by_user_ids'
        else 'linkable'
    end as resolution_status
from identifiers
left join user_ids_seen_with
    on user_ids_seen_with.identifier_type = identifiers.identifier_type
    and user_ids_seen_with.identifier_value = identifiers.identifier_value

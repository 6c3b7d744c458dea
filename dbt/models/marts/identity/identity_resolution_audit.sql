-- Every identifier identity resolution refused to link, with the reason:
--   placeholder            a junk value (var identity_placeholder_values, all-zero ids)
--   shared_by_user_ids     seen with more user_ids than var identity_max_user_ids_per_identifier
--   would_merge_user_ids   linked only through other identifiers to more than one user_id
--   invalid_phone          could not be read as a phone number (the raw spelling is kept)
with classified as (
    select * from {{ ref('int_identifiers_classified') }}
),

bridges as (
    select * from {{ ref('int_identity_bridges') }}
),

refused as (
    select
        identifier_type,
        identifier_value,
        resolution_status as reason,
        distinct_user_ids,
        records,
        first_seen_at,
        last_seen_at
    from classified
    where resolution_status <> 'linkable'
    union all
    select
        classified.identifier_type,
        classified.identifier_value,
        'would_merge_user_ids',
        bridges.distinct_user_ids,
        classified.records,
        classified.first_seen_at,
        classified.last_seen_at
    from classified
    join bridges on bridges.node_key = classified.node_key
),

invalid_phones as (
    select
        'phone' as identifier_type,
        raw_value as identifier_value,
        'invalid_phone' as reason,
        cast(0 as bigint) as distinct_user_ids,
        count(distinct source || ':' || record_key) as records,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at
    from {{ ref('int_identity_observations') }}
    where identifier_type = 'phone' and identifier_value is null
    group by raw_value
),

all_refused as (
    select * from refused
    union all
    select * from invalid_phones
)

select
    cast(identifier_type as varchar) as identifier_type,
    cast(identifier_value as varchar) as identifier_value,
    cast(reason as varchar) as reason,
    cast(distinct_user_ids as bigint) as distinct_user_ids,
    cast(records as bigint) as records,
    cast(first_seen_at as timestamp) as first_seen_at,
    cast(last_seen_at as timestamp) as last_seen_at
from all_refused

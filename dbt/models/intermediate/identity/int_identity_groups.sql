-- Groups of linkable identifiers other than user_ids, connected through the records they are seen in
-- together (connected_components()), with the user_ids each group touches: the user_ids of the records
-- its identifiers are seen in. int_identity_bridges demotes the groups that touch more than one;
-- int_identity_graph joins every other group to its user_id.
{{ config(post_hook=[
    "drop table if exists {{ this.schema }}.int_identity_groups_cc__labels",
    "drop table if exists {{ this.schema }}.int_identity_groups_cc__record_nodes",
]) }}

{% set record_nodes %}
    select distinct observations.source, observations.record_key, classified.node_key as node
    from {{ ref('int_identity_observations') }} as observations
    join {{ ref('int_identifiers_classified') }} as classified
        on classified.identifier_type = observations.identifier_type
        and classified.identifier_value = observations.identifier_value
    where classified.resolution_status = 'linkable' and classified.identifier_type <> 'user_id'
{% endset %}

{% set nodes %}
    select node_key as node from {{ ref('int_identifiers_classified') }}
    where resolution_status = 'linkable' and identifier_type <> 'user_id'
{% endset %}

{%- set groups = connected_components(record_star_edges(record_nodes, this.schema, 'int_identity_groups_cc'), nodes, this.schema, 'int_identity_groups_cc') %}

with groups as (
    select node, component from {{ groups }}
),

user_ids_per_record as (
    select distinct source, record_key, identifier_value as user_id
    from {{ ref('int_identity_observations') }}
    where identifier_type = 'user_id'
),

group_user_ids as (
    select
        groups.component,
        count(distinct user_ids_per_record.user_id) as distinct_user_ids,
        min(user_ids_per_record.user_id) as user_id
    -- record_star_edges() materialized the record nodes above.
    from {{ this.schema }}.int_identity_groups_cc__record_nodes as record_nodes
    join groups on groups.node = record_nodes.node
    join user_ids_per_record
        on user_ids_per_record.source = record_nodes.source
        and user_ids_per_record.record_key = record_nodes.record_key
    group by groups.component
)

select
    groups.node as node_key,
    groups.component as group_key,
    coalesce(group_user_ids.distinct_user_ids, 0) as distinct_user_ids,
    -- the one user_id of a group that touches exactly one
    case when group_user_ids.distinct_user_ids = 1 then group_user_ids.user_id end as user_id
from groups
left join group_user_ids on group_user_ids.component = groups.component

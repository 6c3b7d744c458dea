-- The identity graph resolved: every linkable identifier with its component (customer). Components
-- are the connected components of the links between identifiers seen in the same record, computed by
-- connected_components() until no label changes.
{{ config(post_hook=[
    "drop table if exists {{ this.schema }}.int_identity_graph_cc__labels",
    "drop table if exists {{ this.schema }}.int_identity_graph_cc__record_nodes",
]) }}

{% set linked_identifiers %}
    select classified.*
    from {{ ref('int_identifiers_classified') }} as classified
    where classified.resolution_status = 'linkable'
        and not exists (
            select 1 from {{ ref('int_identity_bridges') }} as bridges
            where bridges.node_key = classified.node_key
        )
{% endset %}

{% set record_nodes %}
    select distinct observations.source, observations.record_key, linked.node_key as node
    from {{ ref('int_identity_observations') }} as observations
    join ({{ linked_identifiers }}) as linked
        on linked.identifier_type = observations.identifier_type
        and linked.identifier_value = observations.identifier_value
{% endset %}

{% set nodes %}
    select node_key as node from ({{ linked_identifiers }}) as linked
{% endset %}

{%- set components = connected_components(record_star_edges(record_nodes, this.schema, 'int_identity_graph_cc'), nodes, this.schema, 'int_identity_graph_cc') %}

select
    linked.identifier_type,
    linked.identifier_value,
    linked.node_key,
    components.component
from ({{ linked_identifiers }}) as linked
join {{ components }} as components on components.node = linked.node_key

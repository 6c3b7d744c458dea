-- Every identifier of every customer, per source, with when it was first and last seen.
-- A customer is a resolved identity component with at least one identifier besides anonymous ids;
-- anonymous-only visitors are not customers (their events still count once they identify).
with graph as (
    select * from {{ ref('int_identity_graph') }}
),

customer_components as (
    select component
    from graph
    group by component
    having sum(case when identifier_type <> 'anonymous_id' then 1 else 0 end) > 0
),

observations as (
    select source, identifier_type, identifier_value, observed_at
    from {{ ref('int_identity_observations') }}
    where identifier_value is not null
)

select
    cast('cus_' || substr(graph.component, 2, 16) as varchar) as customer_id,
    cast(graph.identifier_type as varchar) as identifier_type,
    cast(graph.identifier_value as varchar) as identifier_value,
    cast(observations.source as varchar) as source,
    cast(min(observations.observed_at) as timestamp) as first_seen_at,
    cast(max(observations.observed_at) as timestamp) as last_seen_at
from graph
join customer_components on customer_components.component = graph.component
join observations
    on observations.identifier_type = graph.identifier_type
    and observations.identifier_value = graph.identifier_value
group by graph.component, graph.identifier_type, graph.identifier_value, observations.source

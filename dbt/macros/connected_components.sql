{#-
  Connected components of an undirected graph, computed in the warehouse and repeated until no label
  changes (never a fixed number of passes).

  Each round, every tree of nodes sharing a label hooks onto the smallest label found across its
  edges, then pointer jumping (label := label of label) flattens the result until it stops changing.
  Every tree either hooks or is hooked onto, so the number of trees in a component at least halves
  per round: chains of any length finish in a logarithmic number of rounds.

  edges_sql: a query returning (node_a, node_b) text pairs, used in both directions.
  nodes_sql: a query returning (node) for every node, including nodes without edges.
  Returns a table name with (node, component): component is the smallest node of the component.
  Node keys must sort the same in every collation (callers use lower-case hex digests).
-#}
{% macro connected_components(edges_sql, nodes_sql, work_schema, name, max_rounds=64) %}
    {%- set ids = work_schema ~ '.' ~ name ~ '__ids' -%}
    {%- set edges = work_schema ~ '.' ~ name ~ '__edges' -%}
    {%- set labels = work_schema ~ '.' ~ name ~ '__labels' -%}
    {%- set next_labels = work_schema ~ '.' ~ name ~ '__next_labels' -%}
    {%- if not execute -%}{{ return(labels) }}{%- endif -%}

    {% do run_query('create schema if not exists ' ~ work_schema) %}
    {% for table in [ids, edges, labels, next_labels, edges ~ '_once'] %}
        {% do run_query('drop table if exists ' ~ table) %}
    {% endfor %}
    {#- Evaluate the caller's query once. The rounds work on integer ids numbered in node order (so the
        smallest id of a component is its smallest node): joins and rewrites of integers cost a
        fraction of those of text keys. -#}
    {% do run_query('create table ' ~ edges ~ '_once as select node_a, node_b from (' ~ edges_sql ~ ') as e where node_a <> node_b') %}
    {% do run_query(
        'create table ' ~ ids ~ ' as select node, row_number() over (order by node) as id from ('
        ~ 'select node from (' ~ nodes_sql ~ ') as n union select node_a from ' ~ edges ~ '_once '
        ~ 'union select node_b from ' ~ edges ~ '_once) as all_nodes'
    ) %}
    {% do _cc_analyze(ids) %}
    {#- Both directions of every edge, between integer ids. -#}
    {% do run_query(
        'create table ' ~ edges ~ ' as '
        ~ 'with e as (select a.id as a, b.id as b from ' ~ edges ~ '_once as o '
        ~ 'join ' ~ ids ~ ' as a on a.node = o.node_a join ' ~ ids ~ ' as b on b.node = o.node_b) '
        ~ 'select a as node, b as neighbour from e union select b, a from e'
    ) %}
    {% do run_query('drop table ' ~ edges ~ '_once') %}
    {#- The first hook is folded into the start: each node starts at the smallest id among itself and its neighbours. -#}
    {% do run_query(
        'create table ' ~ next_labels ~ ' as select ids.id as node, '
        ~ 'least(ids.id, coalesce(min(e.neighbour), ids.id)) as component '
        ~ 'from ' ~ ids ~ ' as ids left join ' ~ edges ~ ' as e on e.node = ids.id group by ids.id'
    ) %}
    {% do _cc_analyze(edges) %}
    {% do _cc_analyze(next_labels) %}

    {%- set outer = namespace(converged=false, rounds=0, passes=0) -%}
    {%- for round in range(max_rounds) if not outer.converged -%}
        {%- if round > 0 -%}
            {%- set hooked = _cc_replace_labels(labels, next_labels, name,
                'with tree_best as ('
                ~ '  select l.component as tree, min(n.component) as best'
                ~ '  from ' ~ labels ~ ' as l'
                ~ '  join ' ~ edges ~ ' as e on e.node = l.node'
                ~ '  join ' ~ labels ~ ' as n on n.node = e.neighbour'
                ~ '  where n.component < l.component'
                ~ '  group by l.component'
                ~ ') '
                ~ 'select l.node, l.component as old_component, coalesce(t.best, l.component) as component '
                ~ 'from ' ~ labels ~ ' as l left join tree_best as t on t.tree = l.component') -%}
        {%- else -%}
            {#- Round 0's hook was the start above; it changed labels unless there are no edges. -#}
            {% do run_query('alter table ' ~ next_labels ~ ' rename to ' ~ name ~ '__labels') %}
            {%- set hooked = run_query('select count(*) from ' ~ edges).columns[0].values()[0] | int -%}
        {%- endif -%}
        {%- set inner = namespace(flat=false) -%}
        {%- for jump in range(64) if not inner.flat and hooked > 0 -%}
            {%- set jumped = _cc_replace_labels(labels, next_labels, name,
                'select l.node, l.component as old_component, coalesce(p.component, l.component) as component '
                ~ 'from ' ~ labels ~ ' as l left join ' ~ labels ~ ' as p on p.node = l.component') -%}
            {%- set outer.passes = outer.passes + 1 -%}
            {%- if jumped == 0 -%}{%- set inner.flat = true -%}{%- endif -%}
        {%- endfor -%}
        {%- set outer.rounds = outer.rounds + 1 -%}
        {%- if hooked == 0 -%}{%- set outer.converged = true -%}{%- endif -%}
    {%- endfor -%}
    {%- if not outer.converged -%}
        {{ exceptions.raise_compiler_error(name ~ ': labels still changing after ' ~ max_rounds ~ ' rounds') }}
    {%- endif -%}
    {{ log(name ~ ': converged after ' ~ outer.rounds ~ ' rounds, ' ~ outer.passes ~ ' pointer-jumping passes', info=true) }}
    {#- Back to the caller's node keys. -#}
    {% do run_query(
        'create table ' ~ next_labels ~ ' as select n.node, c.node as component from ' ~ labels ~ ' as l '
        ~ 'join ' ~ ids ~ ' as n on n.id = l.node join ' ~ ids ~ ' as c on c.id = l.component'
    ) %}
    {% do run_query('drop table ' ~ labels) %}
    {% do run_query('alter table ' ~ next_labels ~ ' rename to ' ~ name ~ '__labels') %}
    {% do _cc_analyze(labels) %}
    {% for table in [edges, ids] %}
        {% do run_query('drop table ' ~ table) %}
    {% endfor %}
    {{ return(labels) }}
{% endmacro %}

{#- Builds next_labels from select_sql (node, old_component, component), swaps it in for labels, and
    returns how many labels changed. -#}
{% macro _cc_replace_labels(labels, next_labels, name, select_sql) %}
    {% do run_query('create table ' ~ next_labels ~ ' as ' ~ select_sql) %}
    {% do _cc_analyze(next_labels) %}
    {%- set changed = run_query(
        'select count(*) from ' ~ next_labels ~ ' where component <> old_component').columns[0].values()[0] -%}
    {% do run_query('drop table ' ~ labels) %}
    {% do run_query('alter table ' ~ next_labels ~ ' rename to ' ~ name ~ '__labels') %}
    {{ return(changed | int) }}
{% endmacro %}

{#- Edges that link every node of a record to the record's smallest node (a star per record): enough
    to connect all identifiers seen together, with one edge per identifier instead of one per pair.
    record_nodes_sql returns (source, record_key, node); it is materialized once as
    <work_schema>.<name>__record_nodes (dropped by the caller's post-hook with the labels). -#}
{% macro record_star_edges(record_nodes_sql, work_schema, name) -%}
    {%- set record_nodes = work_schema ~ '.' ~ name ~ '__record_nodes' -%}
    {%- if execute -%}
        {% do run_query('create schema if not exists ' ~ work_schema) %}
        {% do run_query('drop table if exists ' ~ record_nodes) %}
        {% do run_query('create table ' ~ record_nodes ~ ' as ' ~ record_nodes_sql) %}
        {% do _cc_analyze(record_nodes) %}
    {%- endif -%}
    select record_nodes.node as node_a, hubs.hub as node_b
    from {{ record_nodes }} as record_nodes
    join (
        select source, record_key, min(node) as hub
        from {{ record_nodes }}
        group by source, record_key
    ) as hubs
        on hubs.source = record_nodes.source and hubs.record_key = record_nodes.record_key
    where record_nodes.node <> hubs.hub
{%- endmacro %}

{#- Fresh work tables have no planner statistics in PostgreSQL; without them it picks nested loops. -#}
{% macro _cc_analyze(table) %}
    {% if target.type == 'postgres' %}{% do run_query('analyze ' ~ table) %}{% endif %}
{% endmacro %}

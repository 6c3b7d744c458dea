{#- ops.marketing_suppressions (reverse_etl/suppressions.py: customers a journey sunset), or an empty
    relation with its columns until the first sunset creates it, so models build on a fresh warehouse.
    Not a dbt source: only staging models read sources, and a source on a table that may be missing
    would break the build. Compiled once per build: a table created later is read from the next build. -#}
{% macro marketing_suppressions() -%}
    {%- set existing = adapter.get_relation(database=target.database, schema='ops',
                                            identifier='marketing_suppressions') if execute else none -%}
    {%- if existing is not none -%}
        (select customer_id, reason, journey_id, recorded_at from {{ existing }})
    {%- else -%}
        (select
            cast(null as varchar) as customer_id,
            cast(null as varchar) as reason,
            cast(null as varchar) as journey_id,
            cast(null as timestamp) as recorded_at
        where 1 = 0)
    {%- endif -%}
{%- endmacro %}

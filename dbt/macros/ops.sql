{#- An ops.* table written by Mailroom's Python assets (the send ledger, rendered messages), or an
    empty relation with the same columns before the first send has created it, so the engagement
    models build on a brand-new warehouse. `columns` maps column names to SQL types. -#}
{% macro ops_source(table_name, columns) -%}
    {%- set declared = source('ops', table_name) -%}
    {%- set existing = adapter.get_relation(database=declared.database, schema=declared.schema,
                                            identifier=declared.identifier) if execute else none -%}
    {%- if existing is not none -%}
        {#- a column a later release added reads as NULL until the Python step adds it to the table -#}
        {%- set present = adapter.get_columns_in_relation(existing) | map(attribute='name') | map('lower') | list -%}
        (select
        {%- for name, sql_type in columns.items() %}
            {% if name in present %}{{ name }}{% else %}cast(null as {{ sql_type }}) as {{ name }}{% endif %}
            {{- "," if not loop.last }}
        {%- endfor %}
        from {{ declared }})
    {%- else -%}
        (select
        {%- for name, sql_type in columns.items() %}
            cast(null as {{ sql_type }}) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
        where 1 = 0)
    {%- endif -%}
{%- endmacro %}

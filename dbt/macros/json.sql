{#- Text value at a dotted path inside a JSON text column, e.g. json_text('context', 'device.type').
    Raw tables keep nested Segment objects as JSON text so both engines store them the same way. -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'mailroom')(column, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(column, path) -%}
    json_extract_string({{ column }}, '$.{{ path }}')
{%- endmacro %}

{% macro postgres__json_text(column, path) -%}
    (cast({{ column }} as jsonb) #>> '{ {{- path.split('.') | join(',') -}} }')
{%- endmacro %}

{% macro default__json_text(column, path) -%}
    {{ exceptions.raise_compiler_error("json_text has no implementation for adapter " ~ adapter.type() ~ "; add a " ~ adapter.type() ~ "__json_text macro in dbt/macros/json.sql") }}
{%- endmacro %}

{#- A JSON text column parsed once, for several json_text() look-ups on the result (PostgreSQL would
    otherwise parse the text again for every look-up). -#}
{% macro json_parse(column) -%}
    {{ return(adapter.dispatch('json_parse', 'mailroom')(column)) }}
{%- endmacro %}

{% macro duckdb__json_parse(column) -%}
    cast({{ column }} as json)
{%- endmacro %}

{% macro postgres__json_parse(column) -%}
    cast({{ column }} as jsonb)
{%- endmacro %}

{#- One row per element of the JSON array at `key` in the JSON text column `column` of `relation`,
    with `keep` columns and the element as JSON text in `item`. -#}
{% macro json_array_rows(relation, column, key, keep) -%}
    {{ return(adapter.dispatch('json_array_rows', 'mailroom')(relation, column, key, keep)) }}
{%- endmacro %}

{% macro duckdb__json_array_rows(relation, column, key, keep) -%}
    select {{ keep | join(', ') }}, cast(unnest(cast(json_extract({{ column }}, '$.{{ key }}') as json[])) as varchar) as item
    from {{ relation }}
    where json_type(json_extract({{ column }}, '$.{{ key }}')) = 'ARRAY'
{%- endmacro %}

{% macro postgres__json_array_rows(relation, column, key, keep) -%}
    select {{ keep | join(', ') }}, cast(jsonb_array_elements(cast({{ column }} as jsonb) -> '{{ key }}') as text) as item
    from {{ relation }}
    where jsonb_typeof(cast({{ column }} as jsonb) -> '{{ key }}') = 'array'
{%- endmacro %}

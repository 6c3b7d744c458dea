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

{#- Custom schema names are used verbatim (raw, staging, intermediate, marts, ops) on every engine,
    instead of dbt's default <target_schema>_<custom_schema>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}

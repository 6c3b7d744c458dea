{#- An email address in the form two spellings of it share: spaces around it dropped, ASCII letters
    lower-cased (only ASCII: lower() of other letters depends on the database's locale). The SQL twin of
    dagster_project/addresses.py normalized_address_sql; tests hold the two against each other. -#}
{% macro normalized_email(expression) -%}
    translate(trim({{ expression }}, ' '), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
{%- endmacro %}

{#- Window expression: the most recent non-null value of `column` within `partition_by`, ordered by
    `order_by` (newest first), with `tiebreak` keeping the pick deterministic on every engine. -#}
{% macro latest_non_null(column, partition_by, order_by, tiebreak) -%}
    first_value({{ column }}) over (
        partition by {{ partition_by }}
        order by case when {{ column }} is null then 1 else 0 end, {{ order_by }} desc, {{ tiebreak }} desc
        rows between unbounded preceding and unbounded following
    )
{%- endmacro %}

{#- A rate: numerator / denominator as double precision (the same IEEE result on every engine), null
    where the denominator is 0. Every metrics mart divides through this one definition. -#}
{% macro rate(numerator, denominator) -%}
    cast(cast({{ numerator }} as double precision) / nullif({{ denominator }}, 0) as double precision)
{%- endmacro %}

{#- Seconds from one timestamp to a later one to the microsecond, as double precision (seconds_between
    in time.sql counts whole seconds; a hand-over takes milliseconds). -#}
{% macro elapsed_seconds(earlier, later) -%}
    {{ return(adapter.dispatch('elapsed_seconds', 'mailroom')(earlier, later)) }}
{%- endmacro %}

{% macro duckdb__elapsed_seconds(earlier, later) -%}
    cast(date_diff('microsecond', {{ earlier }}, {{ later }}) / cast(1000000 as double precision) as double precision)
{%- endmacro %}

{% macro postgres__elapsed_seconds(earlier, later) -%}
    cast(extract(epoch from ({{ later }} - {{ earlier }})) as double precision)
{%- endmacro %}

{#- A continuous percentile (linear interpolation, as both engines compute it) of an expression. -#}
{% macro percentile(fraction, expression) -%}
    cast(percentile_cont({{ fraction }}) within group (order by {{ expression }}) as double precision)
{%- endmacro %}

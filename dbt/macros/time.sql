{#- The moment time-based rules are evaluated at (recency, CASL expiry), as a UTC timestamp without
    time zone: MAILROOM_AS_OF (YYYY-MM-DD or a timestamp) when set, for reproducible runs, else now. -#}
{% macro as_of_timestamp() -%}
    {%- set fixed = env_var('MAILROOM_AS_OF', '') -%}
    {%- if fixed -%}
        cast('{{ fixed }}' as timestamp)
    {%- else -%}
        {{ return(adapter.dispatch('utc_now', 'mailroom')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__utc_now() -%}
    cast(timezone('UTC', now()) as timestamp)
{%- endmacro %}

{% macro postgres__utc_now() -%}
    cast(now() at time zone 'UTC' as timestamp)
{%- endmacro %}

{#- Whole days between two timestamps (later minus earlier). -#}
{% macro days_between(earlier, later) -%}
    {{ return(adapter.dispatch('days_between', 'mailroom')(earlier, later)) }}
{%- endmacro %}

{% macro duckdb__days_between(earlier, later) -%}
    date_diff('day', cast({{ earlier }} as date), cast({{ later }} as date))
{%- endmacro %}

{% macro postgres__days_between(earlier, later) -%}
    (cast({{ later }} as date) - cast({{ earlier }} as date))
{%- endmacro %}

{#- A naive UTC timestamp as wall-clock time in the IANA timezone `tz` (an expression). -#}
{% macro to_local_time(utc_timestamp, tz) -%}
    {{ return(adapter.dispatch('to_local_time', 'mailroom')(utc_timestamp, tz)) }}
{%- endmacro %}

{% macro duckdb__to_local_time(utc_timestamp, tz) -%}
    timezone({{ tz }}, {{ utc_timestamp }} at time zone 'UTC')
{%- endmacro %}

{% macro postgres__to_local_time(utc_timestamp, tz) -%}
    (({{ utc_timestamp }} at time zone 'UTC') at time zone {{ tz }})
{%- endmacro %}

{#- Whole seconds from `earlier` to `later`, as an integer (exact on both engines, so averages and
    rounding built on it agree row for row). -#}
{% macro seconds_between(earlier, later) -%}
    {{ return(adapter.dispatch('seconds_between', 'mailroom')(earlier, later)) }}
{%- endmacro %}

{% macro duckdb__seconds_between(earlier, later) -%}
    cast(floor(epoch({{ later }}) - epoch({{ earlier }})) as bigint)
{%- endmacro %}

{% macro postgres__seconds_between(earlier, later) -%}
    cast(floor(extract(epoch from ({{ later }} - {{ earlier }}))) as bigint)
{%- endmacro %}

{#- The ISO day of week (1 = Monday .. 7 = Sunday) of a timestamp, as an integer on both engines. -#}
{% macro local_day_of_week(timestamp) -%}
    cast(extract(isodow from {{ timestamp }}) as integer)
{%- endmacro %}

{#- Hours between two hours of the day around the clock (23 and 0 are 1 apart), as an integer. -#}
{% macro circular_hour_distance(hour_a, hour_b) -%}
    least(abs({{ hour_a }} - {{ hour_b }}), 24 - abs({{ hour_a }} - {{ hour_b }}))
{%- endmacro %}

{#- A constant table of the integers first..last in one column, e.g. the hours of the day, named
    `alias` (default <column>_series). -#}
{% macro integer_series(first, last, column, alias=none) -%}
    (values {% for number in range(first, last + 1) %}({{ number }}){{ ", " if not loop.last }}{% endfor %}) as {{ alias or column ~ '_series' }} ({{ column }})
{%- endmacro %}

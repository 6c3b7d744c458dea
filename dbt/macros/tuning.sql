{#- Per-model engine tuning, run as a pre-hook inside the model's transaction. PostgreSQL's default
    work_mem (4 MB) sends the big sorts and hashes of the identity graph, the recommendations and the
    event models to disk; SET LOCAL lifts it for this model's statement only (var postgres_work_mem).
    DuckDB manages its memory itself: nothing to run there (an empty hook is skipped). -#}
{% macro engine_tuning() -%}
    {{ return(adapter.dispatch('engine_tuning', 'mailroom')()) }}
{%- endmacro %}

{% macro default__engine_tuning() -%}
{%- endmacro %}

{% macro postgres__engine_tuning() -%}
    set local work_mem = '{{ var("postgres_work_mem") }}'
{%- endmacro %}

{#- After a PostgreSQL table is built: statistics for the models that read it. dbt's fresh tables
    have none until autovacuum gets to them, so the planner takes a million rows for a handful and
    picks nested loops and merge joins over unsorted data. -#}
{% macro analyze_built_table() -%}
    {{ return(adapter.dispatch('analyze_built_table', 'mailroom')()) }}
{%- endmacro %}

{% macro default__analyze_built_table() -%}
{%- endmacro %}

{% macro postgres__analyze_built_table() -%}
    {%- if model.config.materialized in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}

{#- For a model whose CTEs PostgreSQL cannot estimate (a CTE scan counts as a few rows whatever it holds),
    so it would nest loops over tens of thousands of rows: hash and merge joins only, for this model's
    statement (SET LOCAL). DuckDB plans these itself. -#}
{% macro without_nested_loops() -%}
    {{ return(adapter.dispatch('without_nested_loops', 'mailroom')()) }}
{%- endmacro %}

{% macro default__without_nested_loops() -%}
{%- endmacro %}

{% macro postgres__without_nested_loops() -%}
    set local enable_nestloop = off
{%- endmacro %}

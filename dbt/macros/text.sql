{#- True when `expression` matches the POSIX regular expression `pattern` (a SQL string literal). -#}
{% macro regex_matches(expression, pattern) -%}
    {{ return(adapter.dispatch('regex_matches', 'mailroom')(expression, pattern)) }}
{%- endmacro %}

{% macro duckdb__regex_matches(expression, pattern) -%}
    regexp_full_match({{ expression }}, {{ pattern }})
{%- endmacro %}

{% macro postgres__regex_matches(expression, pattern) -%}
    ({{ expression }} ~ ('^(' || {{ pattern }} || ')$'))
{%- endmacro %}

{#- Sortable node key for identity resolution: a priority digit (user_id first, so a customer is named
    after its user_id when it has one) and an md5 digest, all characters that sort alike everywhere. -#}
{% macro identity_node_key(identifier_type, identifier_value) -%}
    case {{ identifier_type }}
        when 'user_id' then '0'
        when 'crm_contact_id' then '1'
        when 'email' then '2'
        when 'phone' then '3'
        else '4'
    end || md5({{ identifier_type }} || ':' || {{ identifier_value }})
{%- endmacro %}

{#- Send-time optimization's settled deliveries with the customer's current segment ('unknown' without
    one) and 1 or 0 for a response: the evidence both predictive marts start from. -#}
{% macro settled_send_time_exposures() -%}
    select
        exposures.customer_id,
        exposures.local_dow,
        exposures.local_hour,
        coalesce(segments.segment_key, 'unknown') as segment_key,
        case when exposures.is_responded then 1 else 0 end as responded
    from {{ ref('int_send_time_exposures') }} as exposures
    left join {{ ref('customer_segments') }} as segments on segments.customer_id = exposures.customer_id
    where exposures.is_settled
{%- endmacro %}

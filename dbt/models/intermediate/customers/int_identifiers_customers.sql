-- Which customer each linked identifier belongs to (one row per identifier).
select distinct customer_id, identifier_type, identifier_value
from {{ ref('customer_identities') }}

-- One row per product version from the catalog export.
select
    product_id,
    name as product_name,
    category as product_category,
    price,
    currency,
    url as product_url,
    is_active,
    updated_at,
    source_file,
    loaded_at
from {{ source('raw', 'products') }}

-- Propensity scores (ops.propensity_scores, written by the ops/propensity_scores asset): every customer's
-- 7-day probability from each scored model version at each weekly scoring cutoff; is_served marks the
-- version whose probability campaigns use for that customer. Empty before the first scoring.
select
    customer_id,
    model_name,
    version as model_version,
    cutoff_at,
    probability,
    is_served,
    scored_at
from {{ ops_source('propensity_scores', {
    'customer_id': 'varchar', 'model_name': 'varchar', 'version': 'integer', 'cutoff_at': 'timestamp',
    'probability': 'double precision', 'is_served': 'boolean', 'scored_at': 'timestamp'}) }} as scores

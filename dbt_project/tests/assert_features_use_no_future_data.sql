-- Point-in-time correctness: no feature row may use a fact that became known after its
-- snapshot. customer_features records the latest known-at time of every fact it used.
select
    customer_id,
    snapshot_date,
    source_data_as_of
from {{ ref('customer_features') }}
where source_data_as_of > cast(snapshot_date as timestamp)

-- Features joined to their labels, for every mature snapshot: what models train on.
select
    f.*,
    l.churned_within_horizon
from {{ ref('customer_features') }} as f
inner join {{ ref('churn_labels') }} as l
    on
        l.customer_id = f.customer_id
        and l.snapshot_date = f.snapshot_date

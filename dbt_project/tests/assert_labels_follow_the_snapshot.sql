-- A positive label needs a cancellation on or after the snapshot and within the horizon.
select
    l.customer_id,
    l.snapshot_date,
    l.churn_date
from {{ ref('churn_labels') }} as l
where
    l.churned_within_horizon = 1
    and (l.churn_date < l.snapshot_date or l.churn_date >= l.snapshot_date + {{ business()['label_horizon_days'] }})

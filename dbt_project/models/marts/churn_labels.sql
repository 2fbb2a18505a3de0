-- The label for each customer and mature snapshot: did the customer cancel within
-- the horizon (var label_horizon_days) after the snapshot?
select
    f.customer_id,
    f.snapshot_date,
    case
        when
            c.churn_date is not null
            and c.churn_date < f.snapshot_date + {{ business()['label_horizon_days'] }}
            then 1
        else 0
    end as churned_within_horizon,
    c.churn_date
from {{ ref('customer_features') }} as f
inner join {{ ref('snapshot_dates') }} as s
    on s.snapshot_date = f.snapshot_date
inner join {{ ref('int_customer_churn') }} as c
    on c.customer_id = f.customer_id
where s.is_label_mature

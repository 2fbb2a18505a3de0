-- Features of every active customer at the latest snapshot: what the model scores.
select f.*
from {{ ref('customer_features') }} as f
inner join {{ ref('snapshot_dates') }} as s
    on s.snapshot_date = f.snapshot_date
where s.is_latest

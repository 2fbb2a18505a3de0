-- Every customer at every snapshot before the latest, with how long the data has followed them since
-- and, if they cancelled within that time, after how many days: what the time-to-churn model learns
-- from (a customer still active at the data's end is censored there).
with observed as (
    select max(event_date) as data_end
    from {{ ref('int_daily_usage') }}
)

select
    f.*,
    -- A date less a date is a number of days in DuckDB and PostgreSQL alike.
    (o.data_end - f.snapshot_date) + 1 as days_followed,
    case
        when c.churn_date is not null and c.churn_date <= o.data_end
            then c.churn_date - f.snapshot_date
    end as days_to_churn
from {{ ref('customer_features') }} as f
inner join {{ ref('snapshot_dates') }} as s
    on s.snapshot_date = f.snapshot_date
inner join {{ ref('int_customer_churn') }} as c
    on c.customer_id = f.customer_id
cross join observed as o
where not s.is_latest

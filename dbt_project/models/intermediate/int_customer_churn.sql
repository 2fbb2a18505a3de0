-- The observed cancellation of each customer (the first one recorded), for labels.
select
    customer_id,
    min(cancelled_at) as churn_date,
    min(case when cancelled_at is not null then valid_from end) as churn_recorded_at
from {{ ref('int_customer_versions') }}
group by customer_id

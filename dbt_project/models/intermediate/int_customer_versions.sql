-- CRM history as validity intervals: each version holds from its updated_at until
-- the next version's. A customer as known at T is the version with
-- valid_from < T <= valid_to (valid_to is empty for the current version).
select
    customer_id,
    signup_date,
    plan,
    contract_type,
    region,
    segment,
    seats,
    acquisition_channel,
    cancelled_at,
    updated_at as valid_from,
    lead(updated_at) over (partition by customer_id order by updated_at) as valid_to,
    lag(plan) over (partition by customer_id order by updated_at) as previous_plan,
    lag(seats) over (partition by customer_id order by updated_at) as previous_seats,
    row_number() over (partition by customer_id order by updated_at) as version_number
from {{ ref('stg_crm_customers') }}

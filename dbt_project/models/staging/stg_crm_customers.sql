-- CRM versions, typed: one row per customer and updated_at (exact re-deliveries removed).
with ranked as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(signup_date as date) as signup_date,
        lower(plan) as plan,
        lower(contract_type) as contract_type,
        lower(region) as region,
        lower(segment) as segment,
        cast(seats as integer) as seats,
        lower(acquisition_channel) as acquisition_channel,
        cast(cancelled_at as date) as cancelled_at,
        cast(updated_at as timestamp) as updated_at,
        row_number() over (partition by customer_id, updated_at order by seats) as version_rank
    from {{ source('raw', 'crm_customers') }}
)

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
    updated_at
from ranked
where version_rank = 1

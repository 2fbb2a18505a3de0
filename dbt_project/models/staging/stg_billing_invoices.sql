-- Invoices, typed, one row per invoice.
with ranked as (
    select
        cast(invoice_id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        cast(invoice_date as date) as invoice_date,
        cast(amount as double precision) as amount,
        lower(status) as status,
        cast(paid_at as date) as paid_at,
        row_number() over (partition by invoice_id order by paid_at desc nulls last) as row_rank
    from {{ source('raw', 'billing_invoices') }}
)

select
    invoice_id,
    customer_id,
    invoice_date,
    amount,
    status,
    paid_at
from ranked
where row_rank = 1

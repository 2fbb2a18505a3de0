-- Invoices as loaded, one row per invoice (optional source).
{{ config(enabled=has_source('invoices')) }}
select
    invoice_id,
    customer_id,
    issued_at,
    cast(issued_at as date) as invoice_date,
    amount,
    status,
    paid_at
from {{ source('raw', 'invoices') }}

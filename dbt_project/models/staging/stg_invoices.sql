-- Invoices as loaded, typed, one row per invoice (optional source).
{{ config(enabled=has_source('invoices')) }}
select
    cast(invoice_id as varchar) as invoice_id,
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(issued_at as timestamp) as issued_at,
    cast(cast(issued_at as timestamp) as date) as invoice_date,
    cast(amount as double precision) as amount,
    cast(status as varchar) as status,
    cast(paid_at as timestamp) as paid_at
from {{ source('raw', 'invoices') }}

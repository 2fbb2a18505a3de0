-- Billing facts with the time each became known: an invoice when issued, a failed
-- payment when the charge failed (the invoice day), a late payment when the due
-- date passed unpaid, a payment when it arrived.
select
    invoice_id,
    customer_id,
    invoice_date,
    cast(invoice_date as timestamp) as issued_at,
    amount,
    status,
    paid_at,
    status = 'failed' as is_failed,
    status <> 'failed'
    and (paid_at is null or paid_at > invoice_date + {{ var('payment_due_days') }}) as is_late,
    cast(invoice_date + {{ var('payment_due_days') }} + 1 as timestamp) as late_known_at
from {{ ref('stg_billing_invoices') }}

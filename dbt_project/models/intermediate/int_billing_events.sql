-- Billing facts with the time each became known: an invoice when issued, a failed payment when
-- the charge failed (the invoice day), a late payment when the due date passed unpaid.
{{ config(enabled=has_source('invoices')) }}
{%- set due = business().get('payment_due_days', 7) %}
select
    invoice_id,
    customer_id,
    invoice_date,
    issued_at,
    amount,
    status,
    paid_at,
    coalesce(status in (
        {%- for s in business().get('failed_statuses', ['failed']) %}{{ lit(s) }}{{ ", " if not loop.last }}{% endfor -%}
    ), false) as is_failed,
    coalesce(status, '') not in (
        {%- for s in business().get('failed_statuses', ['failed']) %}{{ lit(s) }}{{ ", " if not loop.last }}{% endfor -%}
    )
    and (paid_at is null or paid_at > invoice_date + {{ due }}) as is_late,
    cast(invoice_date + {{ due }} + 1 as timestamp) as late_known_at
from {{ ref('stg_invoices') }}

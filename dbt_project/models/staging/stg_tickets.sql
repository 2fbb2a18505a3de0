-- Support tickets as loaded, one row per ticket (optional source).
{{ config(enabled=has_source('tickets')) }}
select
    ticket_id,
    customer_id,
    created_at,
    resolved_at,
    satisfaction
from {{ source('raw', 'tickets') }}

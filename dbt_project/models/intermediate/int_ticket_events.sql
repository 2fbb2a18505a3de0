-- Support tickets with the time each fact became known: opened at created_at, resolved (and
-- rated) at resolved_at.
{{ config(enabled=has_source('tickets')) }}
select
    ticket_id,
    customer_id,
    created_at,
    resolved_at,
    satisfaction
from {{ ref('stg_tickets') }}

-- Support tickets with the time each fact became known: opened at created_at,
-- resolved (and rated) at resolved_at.
select
    ticket_id,
    customer_id,
    created_at,
    resolved_at,
    category,
    priority,
    satisfaction_score
from {{ ref('stg_support_tickets') }}

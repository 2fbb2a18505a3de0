-- Support tickets, typed, one row per ticket.
with ranked as (
    select
        cast(ticket_id as bigint) as ticket_id,
        cast(customer_id as bigint) as customer_id,
        cast(created_at as timestamp) as created_at,
        cast(resolved_at as timestamp) as resolved_at,
        lower(category) as category,
        lower(priority) as priority,
        cast(satisfaction_score as integer) as satisfaction_score,
        row_number() over (partition by ticket_id order by resolved_at desc nulls last) as row_rank
    from {{ source('raw', 'support_tickets') }}
)

select
    ticket_id,
    customer_id,
    created_at,
    resolved_at,
    category,
    priority,
    satisfaction_score
from ranked
where row_rank = 1

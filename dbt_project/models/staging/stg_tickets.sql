-- Support tickets as loaded, typed, one row per ticket (optional source).
{{ config(enabled=has_source('tickets')) }}
select
    cast(ticket_id as varchar) as ticket_id,
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(created_at as timestamp) as created_at,
    cast(resolved_at as timestamp) as resolved_at,
    cast(satisfaction as double precision) as satisfaction
from {{ source('raw', 'tickets') }}

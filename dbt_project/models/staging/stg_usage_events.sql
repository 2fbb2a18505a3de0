-- Daily usage, one row per customer and day (duplicates summed away by keeping one).
with ranked as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(event_date as date) as event_date,
        cast(sessions as integer) as sessions,
        cast(minutes as double precision) as minutes,
        cast(feature_uses as integer) as feature_uses,
        row_number() over (partition by customer_id, event_date order by sessions desc) as row_rank
    from {{ source('raw', 'usage_events') }}
)
select customer_id, event_date, sessions, minutes, feature_uses
from ranked
where row_rank = 1

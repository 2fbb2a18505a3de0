-- Usage per customer and day; a day's usage is known from the start of the next day.
select
    customer_id,
    event_date,
    cast(event_date + 1 as timestamp) as known_at,
    sessions,
    minutes,
    feature_uses
from {{ ref('stg_usage_events') }}

-- Product usage as loaded: one row per event (customer, time, type, value, user), or one row per
-- customer and active day with the declared measures. Daily-partitioned (built with the days of
-- Dagster's partitions); event_time lets a microbatch model filter it to one day.
{{ config(event_time='event_date', tags=['daily_partitioned']) }}
{%- if business()['events_shape'] == 'daily' %}
select
    customer_id,
    event_date
    {%- for name in business()['measures'] %},
    {{ adapter.quote(name) }}
    {%- endfor %}
from {{ source('raw', 'events') }}
{%- else %}
select
    customer_id,
    event_at,
    cast(event_at as date) as event_date,
    event_type,
    value,
    user_id
from {{ source('raw', 'events') }}
{%- endif %}

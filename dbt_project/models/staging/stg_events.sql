-- Product usage as loaded, typed: one row per event (customer, time, type, value, user), or one
-- row per customer and active day with the declared measures. Daily-partitioned (built with the
-- days of Dagster's partitions); event_time lets a microbatch model filter it to one day.
{{ config(event_time='event_date', tags=['daily_partitioned']) }}
{%- if business()['events_shape'] == 'daily' %}
select
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(event_date as date) as event_date{% for name in business()['measures'] %},
    cast({{ q(name) }} as double precision) as {{ q(name) }}{% endfor %}
from {{ source('raw', 'events') }}
{%- else %}
select
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(event_at as timestamp) as event_at,
    cast(cast(event_at as timestamp) as date) as event_date,
    cast(event_type as varchar) as event_type,
    cast(value as double precision) as value,
    cast(user_id as varchar) as user_id
from {{ source('raw', 'events') }}
{%- endif %}

-- Usage per customer and day (and event type, for an event log); a day's usage is known from the
-- start of the next day. Daily-partitioned with dbt's microbatch strategy: one batch per day of
-- event_date. Dagster builds the days of its partitions (--event-time-start/--event-time-end);
-- each batch replaces its day, so re-building a day leaves the same rows and never duplicates
-- them. The reference to stg_events is filtered to the batch's day by that model's event_time.
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_date',
        batch_size='day',
        begin=business().get('usage_begin', '2000-01-01'),
        lookback=0,
        tags=['daily_partitioned'],
    )
}}
{%- if business()['events_shape'] == 'daily' %}
select
    customer_id,
    event_date,
    cast(event_date + 1 as timestamp) as known_at{% for name in business()['measures'] %},
    {{ q(name) }}{% endfor %}
from {{ ref('stg_events') }}
{%- else %}
select
    customer_id,
    event_date,
    cast(event_date + 1 as timestamp) as known_at,
    coalesce(event_type, '') as event_type,
    count(*) as events,
    -- Summed as decimals: a parallel sum of doubles depends on the order of the rows.
    cast(sum(cast(value as decimal(18, 4))) as double precision) as value
from {{ ref('stg_events') }}
group by customer_id, event_date, coalesce(event_type, '')
{%- endif %}

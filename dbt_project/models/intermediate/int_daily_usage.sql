-- Usage per customer and day (and event type, for an event log); a day's usage is known from the
-- start of the next day. Daily-partitioned with dbt's microbatch strategy. Dagster builds the days
-- of its partitions (--event-time-start/--event-time-end); each batch replaces its days, so
-- re-building a day leaves the same rows and never duplicates them. The reference to stg_events is
-- filtered to the batch's days by that model's event_time.
-- A batch is a day, or a month when CHURN_PLATFORM_USAGE_BATCH_SIZE says so: Dagster's run of a
-- long range of partitions (a backfill, a first run over a year) sets it, since dbt's fixed cost
-- per batch (about 50 ms) is most of a small day's work. A month's batch rebuilds its whole month
-- from the source; its rows are the same as those of its days built one by one.
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_date',
        batch_size=env_var('CHURN_PLATFORM_USAGE_BATCH_SIZE', 'day'),
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

-- Usage per customer and day; a day's usage is known from the start of the next day.
-- Daily-partitioned with dbt's microbatch strategy: one batch per day of event_date. Dagster
-- builds the days of its partitions (--event-time-start/--event-time-end); each batch replaces
-- its day, so re-building a day leaves the same rows and never duplicates them. The reference to
-- stg_usage_events is filtered to the batch's day by that model's event_time.
{{
    config(
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_date',
        batch_size='day',
        begin=var('usage_begin'),
        lookback=0,
        tags=['daily_partitioned'],
    )
}}
select
    customer_id,
    event_date,
    cast(event_date + 1 as timestamp) as known_at,
    sessions,
    minutes,
    feature_uses
from {{ ref('stg_usage_events') }}

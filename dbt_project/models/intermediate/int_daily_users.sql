-- The distinct users of each customer per day and event type (an event log with a user column),
-- for distinct-user counts over windows. Daily-partitioned like int_daily_usage.
{%- set wanted = features_of('type_users', 'total_users') | length > 0 %}
{{
    config(
        enabled=business()['events_shape'] == 'events' and wanted,
        materialized='incremental',
        incremental_strategy='microbatch',
        event_time='event_date',
        batch_size='day',
        begin=business().get('usage_begin', '2000-01-01'),
        lookback=0,
        tags=['daily_partitioned'],
    )
}}
select distinct
    customer_id,
    event_date,
    coalesce(event_type, '') as event_type,
    user_id
from {{ ref('stg_events') }}
where user_id is not null

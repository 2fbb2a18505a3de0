-- The distinct users of each customer per day and event type (an event log with a user column), for
-- distinct-user counts over windows. A table built whole: a microbatch a day would cost more in dbt's
-- overhead than the one pass it takes.
{%- set wanted = features_of('type_users', 'total_users') | length > 0 %}
{{
    config(
        enabled=business()['events_shape'] == 'events' and wanted,
        materialized='table',
    )
}}
select distinct
    customer_id,
    event_date,
    coalesce(event_type, '') as event_type,
    user_id
from {{ ref('stg_events') }}
where user_id is not null

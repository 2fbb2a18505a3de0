-- Daily usage, one row per customer and day, typed. The source's data contract already
-- quarantines a second row for the same customer and day (reason duplicate_key), so no
-- deduplication pass over every row is needed here; the unique_combination test on this
-- model checks that it holds. Daily-partitioned (built with the days of Dagster's partitions);
-- event_time lets a microbatch model filter it to one day.
{{ config(event_time='event_date', tags=['daily_partitioned']) }}
select
    cast(customer_id as bigint) as customer_id,
    cast(event_date as date) as event_date,
    cast(sessions as integer) as sessions,
    cast(minutes as double precision) as minutes,
    cast(feature_uses as integer) as feature_uses
from {{ source('raw', 'usage_events') }}

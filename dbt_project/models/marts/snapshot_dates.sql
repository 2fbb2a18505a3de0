-- The snapshot calendar: the first day of every Nth month (var snapshot_interval_months)
-- from the first month with enough history (var first_snapshot_offset_days) up to the
-- day after the last observed usage ("now"). A snapshot's label is mature once the
-- label horizon after it has been observed.
with bounds as (
    select
        min(event_date) as data_start,
        max(event_date) as data_end
    from {{ ref('int_daily_usage') }}
),

calendar as (
    select
        cast(t.month_start as date) as snapshot_date,
        b.data_start,
        b.data_end
    from bounds as b
    cross join lateral generate_series(
        cast(date_trunc('month', b.data_start + {{ business()['first_snapshot_offset_days'] }} - 1) as timestamp)
        + interval '1 month',
        cast(b.data_end + 1 as timestamp),
        interval '{{ business()['snapshot_interval_months'] }} month'
    ) as t (month_start)
)

select
    snapshot_date,
    snapshot_date + {{ business()['label_horizon_days'] }} <= data_end + 1 as is_label_mature,
    snapshot_date = max(snapshot_date) over () as is_latest
from calendar

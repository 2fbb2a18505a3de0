-- Usage per customer and day; a day's usage is known from the start of the next day.
-- Daily-partitioned: each build covers the days [partition_start, partition_end) (vars set by
-- the orchestrator; the defaults cover every day). An incremental build first deletes those
-- days, so re-building a day leaves the same rows and never duplicates them.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook=[
            "{% if is_incremental() %}delete from {{ this }} where event_date >= cast('{{ var('partition_start') }}' as date) and event_date < cast('{{ var('partition_end') }}' as date){% endif %}"
        ],
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
where
    event_date >= cast('{{ var("partition_start") }}' as date)
    and event_date < cast('{{ var("partition_end") }}' as date)

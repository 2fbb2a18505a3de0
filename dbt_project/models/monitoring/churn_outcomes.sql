-- What happened to customers after they were scored: each prediction with a customer, its
-- outcome once the label horizon after its as-of day has been observed.
with predictions as (
    select
        'batch' as source,
        cast(customer_id as varchar) as customer_id,
        cast(snapshot_date as date) as as_of,
        cast(model_version as varchar) as model_version,
        cast(churn_probability as double precision) as churn_probability
    from {{ source('scores', 'churn_scores_history') }}
    union all
    -- Typed explicitly: an empty log has untyped (text) columns.
    select
        'served' as source,
        cast(customer_id as varchar) as customer_id,
        coalesce(cast(as_of as date), cast(logged_at as date)) as as_of,
        cast(model_version as varchar) as model_version,
        cast(churn_probability as double precision) as churn_probability
    from {{ source('monitoring', 'prediction_log') }}
    where customer_id is not null
),

churn as (
    select
        cast(customer_id as varchar) as customer_id,
        min(churn_date) as churn_date
    from {{ ref('int_customer_churn') }}
    where churn_date is not null
    group by cast(customer_id as varchar)
),

observed as (
    -- The last day the usage data covers: a horizon ending on it has been observed.
    select max(event_date) as data_end
    from {{ ref('int_daily_usage') }}
),

judged as (
    select
        p.source,
        p.customer_id,
        p.as_of,
        p.model_version,
        p.churn_probability,
        coalesce(p.as_of + {{ business()['label_horizon_days'] }} <= o.data_end + 1, false) as matured,
        coalesce(
            c.churn_date >= p.as_of and c.churn_date < p.as_of + {{ business()['label_horizon_days'] }}, false
        ) as churned_within_horizon
    from predictions as p
    cross join observed as o
    left join churn as c on p.customer_id = c.customer_id
)

select
    source,
    customer_id,
    as_of,
    model_version,
    churn_probability,
    matured,
    case when matured then churned_within_horizon end as churned
from judged

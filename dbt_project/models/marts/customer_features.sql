-- Point-in-time customer features: one row per customer active at each snapshot date T,
-- computed only from facts known at T (the snapshot is taken at the start of day T).
-- source_data_as_of records the latest known-at time of any fact used, and a dbt test
-- checks that it never lies after the snapshot.
with snapshots as (
    select
        snapshot_date,
        cast(snapshot_date as timestamp) as snapshot_at
    from {{ ref('snapshot_dates') }}
),

population as (
    -- The CRM version in force at T, for customers signed up and not cancelled as known at T.
    select
        s.snapshot_date,
        s.snapshot_at,
        v.customer_id,
        v.plan,
        v.contract_type,
        v.region,
        v.segment,
        v.acquisition_channel,
        v.seats,
        v.valid_from,
        s.snapshot_date - v.signup_date as tenure_days
    from snapshots as s
    inner join {{ ref('int_customer_versions') }} as v
        on
            v.valid_from < s.snapshot_at
            and (v.valid_to is null or v.valid_to >= s.snapshot_at)
    inner join {{ ref('int_customer_churn') }} as c
        on c.customer_id = v.customer_id
    where
        v.signup_date < s.snapshot_date
        and v.cancelled_at is null
        -- No cancellation known at T, whatever versions were written after it.
        and (c.churn_recorded_at is null or c.churn_recorded_at >= s.snapshot_at)
),

crm_changes as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when w.plan <> w.previous_plan then 1 else 0 end) as plan_changes_90d,
        sum(w.seats - w.previous_seats) as seat_change_90d,
        max(w.valid_from) as last_change_at
    from population as p
    inner join {{ ref('int_customer_versions') }} as w
        on
            w.customer_id = p.customer_id
            and w.version_number > 1
            and w.valid_from < p.snapshot_at
            and w.valid_from >= p.snapshot_at - interval '90 days'
    group by p.snapshot_date, p.customer_id
),

usage as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when u.event_date >= p.snapshot_date - 7 then u.sessions else 0 end) as sessions_7d,
        sum(case when u.event_date >= p.snapshot_date - 30 then u.sessions else 0 end) as sessions_30d,
        sum(u.sessions) as sessions_90d,
        sum(case
            when u.event_date >= p.snapshot_date - 60 and u.event_date < p.snapshot_date - 30
                then u.sessions
            else 0
        end) as sessions_prior_30d,
        -- Summed as decimals: a parallel sum of doubles depends on the order of the rows, and
        -- the same data must give the same features (and models) in every run.
        cast(
            sum(
                case when u.event_date >= p.snapshot_date - 30 then cast(u.minutes as decimal(18, 4)) else 0 end
            ) as double precision
        ) as minutes_30d,
        sum(case when u.event_date >= p.snapshot_date - 30 then u.feature_uses else 0 end) as feature_uses_30d,
        max(u.event_date) as last_active_date,
        max(u.known_at) as last_known_at
    from population as p
    inner join {{ ref('int_daily_usage') }} as u
        on
            u.customer_id = p.customer_id
            and u.event_date >= p.snapshot_date - 90
            and u.known_at <= p.snapshot_at
    group by p.snapshot_date, p.customer_id
),

billing as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when i.is_failed and i.invoice_date >= p.snapshot_date - 90 then 1 else 0 end)
            as failed_payments_90d,
        sum(case
            when i.is_late and i.late_known_at <= p.snapshot_at and i.invoice_date >= p.snapshot_date - 90
                then 1
            else 0
        end) as late_payments_90d,
        max(case when i.is_late and i.late_known_at <= p.snapshot_at then i.late_known_at else i.issued_at end)
            as last_known_at
    from population as p
    inner join {{ ref('int_billing_events') }} as i
        on
            i.customer_id = p.customer_id
            and i.issued_at < p.snapshot_at
    group by p.snapshot_date, p.customer_id
),

latest_invoice as (
    select
        snapshot_date,
        customer_id,
        amount as mrr
    from (
        select
            p.snapshot_date,
            p.customer_id,
            i.amount,
            row_number() over (
                partition by p.snapshot_date, p.customer_id
                order by i.invoice_date desc, i.invoice_id desc
            ) as invoice_rank
        from population as p
        inner join {{ ref('int_billing_events') }} as i
            on
                i.customer_id = p.customer_id
                and i.issued_at < p.snapshot_at
    ) as ranked
    where invoice_rank = 1
),

tickets as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when t.created_at >= p.snapshot_at - interval '90 days' then 1 else 0 end) as tickets_90d,
        -- Still open as known at T: not resolved before T.
        sum(case when t.resolved_at is null or t.resolved_at >= p.snapshot_at then 1 else 0 end) as open_tickets,
        -- Double precision on every warehouse (PostgreSQL's avg of integers is numeric).
        cast(avg(case
            when t.resolved_at >= p.snapshot_at - interval '90 days' and t.resolved_at < p.snapshot_at
                then t.satisfaction_score
        end) as double precision) as avg_satisfaction_90d,
        max(case when t.resolved_at < p.snapshot_at then t.resolved_at else t.created_at end) as last_known_at
    from population as p
    inner join {{ ref('int_ticket_events') }} as t
        on
            t.customer_id = p.customer_id
            and t.created_at < p.snapshot_at
    group by p.snapshot_date, p.customer_id
)

select
    p.customer_id,
    p.snapshot_date,
    p.plan,
    p.contract_type,
    p.region,
    p.segment,
    p.acquisition_channel,
    p.seats,
    p.tenure_days,
    coalesce(li.mrr, 0) as mrr,
    coalesce(u.sessions_7d, 0) as sessions_7d,
    coalesce(u.sessions_30d, 0) as sessions_30d,
    coalesce(u.sessions_90d, 0) as sessions_90d,
    coalesce(u.minutes_30d, 0) as minutes_30d,
    coalesce(u.feature_uses_30d, 0) as feature_uses_30d,
    cast(coalesce(u.sessions_30d, 0) + 1 as double precision)
    / (coalesce(u.sessions_prior_30d, 0) + 1) as sessions_trend,
    -- 91 means no activity in the 90-day look-back.
    coalesce(p.snapshot_date - u.last_active_date, 91) as days_since_last_activity,
    coalesce(b.failed_payments_90d, 0) as failed_payments_90d,
    coalesce(b.late_payments_90d, 0) as late_payments_90d,
    coalesce(t.tickets_90d, 0) as tickets_90d,
    coalesce(t.open_tickets, 0) as open_tickets,
    t.avg_satisfaction_90d,
    coalesce(c.plan_changes_90d, 0) as plan_changes_90d,
    coalesce(c.seat_change_90d, 0) as seat_change_90d,
    greatest(
        p.valid_from,
        coalesce(c.last_change_at, p.valid_from),
        coalesce(u.last_known_at, p.valid_from),
        coalesce(b.last_known_at, p.valid_from),
        coalesce(t.last_known_at, p.valid_from)
    ) as source_data_as_of
from population as p
left join usage as u
    on u.snapshot_date = p.snapshot_date and u.customer_id = p.customer_id
left join billing as b
    on b.snapshot_date = p.snapshot_date and b.customer_id = p.customer_id
left join latest_invoice as li
    on li.snapshot_date = p.snapshot_date and li.customer_id = p.customer_id
left join tickets as t
    on t.snapshot_date = p.snapshot_date and t.customer_id = p.customer_id
left join crm_changes as c
    on c.snapshot_date = p.snapshot_date and c.customer_id = p.customer_id

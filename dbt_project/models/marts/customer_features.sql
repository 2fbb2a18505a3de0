-- Point-in-time customer features: one row per customer active at each snapshot
-- date T, computed only from rows known before T (the snapshot is taken at the
-- start of day T).
with snapshots as (
    select snapshot_date from {{ ref('snapshot_dates') }}
),

population as (
    select
        s.snapshot_date,
        c.customer_id,
        c.plan,
        c.contract_type,
        c.region,
        c.segment,
        c.acquisition_channel,
        c.seats,
        s.snapshot_date - c.signup_date as tenure_days
    from snapshots as s
    inner join {{ ref('stg_crm_customers') }} as c
        on c.signup_date < s.snapshot_date
        and (c.cancelled_at is null or c.cancelled_at >= s.snapshot_date)
),

usage as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when u.event_date >= p.snapshot_date - 7 then u.sessions else 0 end) as sessions_7d,
        sum(case when u.event_date >= p.snapshot_date - 30 then u.sessions else 0 end) as sessions_30d,
        sum(u.sessions) as sessions_90d,
        sum(case when u.event_date >= p.snapshot_date - 60 and u.event_date < p.snapshot_date - 30
                 then u.sessions else 0 end) as sessions_prior_30d,
        sum(case when u.event_date >= p.snapshot_date - 30 then u.minutes else 0 end) as minutes_30d,
        sum(case when u.event_date >= p.snapshot_date - 30 then u.feature_uses else 0 end) as feature_uses_30d,
        max(u.event_date) as last_active_date
    from population as p
    inner join {{ ref('stg_usage_events') }} as u
        on u.customer_id = p.customer_id
        and u.event_date >= p.snapshot_date - 90
        and u.event_date < p.snapshot_date
    group by p.snapshot_date, p.customer_id
),

billing as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when i.status = 'failed' and i.invoice_date >= p.snapshot_date - 90 then 1 else 0 end)
            as failed_payments_90d,
        -- Late as known at T: the 7-day due date has passed and the money had not arrived by then.
        sum(case when i.status <> 'failed'
                  and i.invoice_date >= p.snapshot_date - 90
                  and i.invoice_date + 7 < p.snapshot_date
                  and (i.paid_at is null or i.paid_at > i.invoice_date + 7)
                 then 1 else 0 end) as late_payments_90d
    from population as p
    inner join {{ ref('stg_billing_invoices') }} as i
        on i.customer_id = p.customer_id
        and i.invoice_date < p.snapshot_date
    group by p.snapshot_date, p.customer_id
),

latest_invoice as (
    select snapshot_date, customer_id, amount as mrr
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
        inner join {{ ref('stg_billing_invoices') }} as i
            on i.customer_id = p.customer_id
            and i.invoice_date < p.snapshot_date
    ) as ranked
    where invoice_rank = 1
),

tickets as (
    select
        p.snapshot_date,
        p.customer_id,
        sum(case when t.created_at >= cast(p.snapshot_date - 90 as timestamp) then 1 else 0 end) as tickets_90d,
        sum(case when t.resolved_at is null or t.resolved_at >= cast(p.snapshot_date as timestamp)
                 then 1 else 0 end) as open_tickets,
        avg(case when t.resolved_at >= cast(p.snapshot_date - 90 as timestamp)
                  and t.resolved_at < cast(p.snapshot_date as timestamp)
                 then t.satisfaction_score end) as avg_satisfaction_90d
    from population as p
    inner join {{ ref('stg_support_tickets') }} as t
        on t.customer_id = p.customer_id
        and t.created_at < cast(p.snapshot_date as timestamp)
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
    t.avg_satisfaction_90d
from population as p
left join usage as u
    on u.snapshot_date = p.snapshot_date and u.customer_id = p.customer_id
left join billing as b
    on b.snapshot_date = p.snapshot_date and b.customer_id = p.customer_id
left join latest_invoice as li
    on li.snapshot_date = p.snapshot_date and li.customer_id = p.customer_id
left join tickets as t
    on t.snapshot_date = p.snapshot_date and t.customer_id = p.customer_id

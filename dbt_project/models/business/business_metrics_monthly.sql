-- Monthly business health, computed from the sources alone (not from any model):
-- customer churn rate, MRR churn and net revenue retention (NRR).
--
-- A customer is active at the start of a month when they signed up before it and had
-- not cancelled before it. MRR is a customer's revenue in a month (int_monthly_mrr: the running
-- subscriptions' MRR, else what was invoiced; zero for a business with neither). For month M:
--   churn_rate            = customers active at the start of M who cancelled during M
--                           / customers active at the start of M
--   starting_mrr          = MRR in the month before M of the customers active at the start of M
--   churned_mrr           = the part of starting_mrr of the customers who cancelled during M
--   mrr_churn_rate        = churned_mrr / starting_mrr
--   net_revenue_retention = MRR in M of the customers of starting_mrr / starting_mrr
--                           (expansion raises it above 1; contraction and churn lower it)
with customers as (
    select
        customer_id,
        cast(min(signup_at) as date) as signup_date
    from {{ ref('stg_accounts') }}
    group by customer_id
),

churn as (
    select
        customer_id,
        churn_date
    from {{ ref('int_customer_churn') }}
    where churn_date is not null
),

bounds as (
    -- The months the usage data covers.
    select
        min(event_date) as first_day,
        max(event_date) as last_day
    from {{ ref('int_daily_usage') }}
),

months as (
    select cast(t.month_start as date) as month
    from bounds as b
    cross join lateral generate_series(
        cast(date_trunc('month', b.first_day) as timestamp) + interval '1 month',
        cast(date_trunc('month', b.last_day) as timestamp),
        interval '1 month'
    ) as t (month_start)
),

mrr as (
    {%- if has_source('subscriptions') or has_source('invoices') %}
    select
        customer_id,
        month,
        mrr
    from {{ ref('int_monthly_mrr') }}
    {%- else %}
    select
        customer_id,
        cast(null as date) as month,
        cast(0 as decimal(18, 2)) as mrr
    from customers
    where false
    {%- endif %}
),

active as (
    select
        m.month,
        c.customer_id,
        ch.churn_date is not null
        and ch.churn_date >= m.month
        and ch.churn_date < cast(m.month + interval '1 month' as date) as churned_in_month
    from months as m
    inner join customers as c on c.signup_date < m.month
    left join churn as ch on ch.customer_id = c.customer_id
    where ch.churn_date is null or ch.churn_date >= m.month
),

per_customer as (
    select
        a.month,
        a.customer_id,
        a.churned_in_month,
        coalesce(prev.mrr, 0) as previous_mrr,
        coalesce(cur.mrr, 0) as current_mrr
    from active as a
    left join mrr as prev
        on prev.customer_id = a.customer_id and prev.month = cast(a.month - interval '1 month' as date)
    left join mrr as cur
        on cur.customer_id = a.customer_id and cur.month = a.month
),

new_customers as (
    select
        cast(date_trunc('month', signup_date) as date) as month,
        count(*) as new_customers
    from customers
    group by 1
)

select
    p.month,
    cast(p.month + interval '1 month' as date) <= b.last_day + 1 as is_complete_month,
    count(*) as customers_at_start,
    count(*) filter (where p.churned_in_month) as churned_customers,
    coalesce(max(n.new_customers), 0) as new_customers,
    cast(count(*) filter (where p.churned_in_month) as double precision) / count(*) as churn_rate,
    -- Money is summed as decimals (exact, in any row order) and divided as doubles.
    cast(sum(p.previous_mrr) as double precision) as starting_mrr,
    cast(sum(p.previous_mrr) filter (where p.churned_in_month) as double precision) as churned_mrr,
    cast(coalesce(sum(p.previous_mrr) filter (where p.churned_in_month), 0) as double precision)
    / nullif(cast(sum(p.previous_mrr) as double precision), 0) as mrr_churn_rate,
    cast(sum(p.current_mrr) filter (where p.previous_mrr > 0) as double precision)
    / nullif(cast(sum(p.previous_mrr) as double precision), 0) as net_revenue_retention
from per_customer as p
cross join bounds as b
left join new_customers as n on n.month = p.month
group by p.month, b.last_day
order by p.month

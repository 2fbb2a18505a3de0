-- Revenue per customer and month, for the business metrics: the MRR of the subscriptions running
-- at the month's end when there are subscriptions, else what was invoiced in the month.
{{ config(enabled=has_source('subscriptions') or has_source('invoices')) }}
{%- if has_source('subscriptions') %}
with months as (
    select cast(t.month_start as date) as month
    from (
        select
            min(started_at) as first_at,
            max(coalesce(ended_at, started_at)) as last_at
        from {{ ref('stg_subscriptions') }}
    ) as b
    cross join lateral generate_series(
        cast(date_trunc('month', b.first_at) as timestamp),
        cast(date_trunc('month', b.last_at) as timestamp),
        interval '1 month'
    ) as t (month_start)
)

select
    s.customer_id,
    m.month,
    sum(cast(s.mrr as decimal(18, 2))) as mrr
from months as m
inner join {{ ref('stg_subscriptions') }} as s
    on
        s.started_at < cast(m.month + interval '1 month' as timestamp)
        and (s.ended_at is null or s.ended_at >= cast(m.month + interval '1 month' as timestamp))
group by s.customer_id, m.month
{%- else %}
select
    customer_id,
    cast(date_trunc('month', invoice_date) as date) as month,
    sum(cast(amount as decimal(18, 2))) as mrr
from {{ ref('stg_invoices') }}
group by 1, 2
{%- endif %}

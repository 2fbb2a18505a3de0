-- Point-in-time customer features: one row per customer active at each snapshot date T, computed
-- only from facts known at T (the snapshot is taken at the start of day T). The columns are the
-- feature catalogue's (churn_platform/business/catalogue.py, passed as the variable churn): one
-- expression per feature from the CTE of its source (macros/features.sql). source_data_as_of
-- records the latest known-at time of any fact used, and a dbt test checks that it never lies
-- after the snapshot.
{%- set b = business() %}
{%- set look_back = b['look_back_days'] %}
{%- set changes = features_of('attribute_changes', 'attribute_change') %}
{%- set usage_features = features_of(
    'measure_sum', 'measure_trend', 'active_days', 'recency', 'type_count', 'type_value', 'type_active_days',
    'type_trend', 'type_recency', 'total_count', 'total_value', 'total_active_days', 'total_trend'
) %}
{%- set user_features = features_of('type_users', 'total_users') %}
{%- set billing_features = features_of('invoice_count', 'invoice_failed', 'invoice_late') %}
{%- set ticket_features = features_of('ticket_count', 'ticket_open', 'ticket_satisfaction') %}
{%- set subscription_features = features_of(
    'sub_mrr', 'sub_mrr_change', 'sub_active', 'sub_changes', 'sub_tenure', 'sub_current_days', 'sub_quantity',
    'sub_quantity_change', 'sub_discount'
) %}
{%- set latest_features = features_of('sub_latest') %}
{%- set alias_of = {} %}
{%- for f in changes %}{% do alias_of.update({f['name']: 'ac'}) %}{% endfor %}
{%- for f in usage_features %}{% do alias_of.update({f['name']: 'u'}) %}{% endfor %}
{%- for f in user_features %}{% do alias_of.update({f['name']: 'us'}) %}{% endfor %}
{%- for f in billing_features %}{% do alias_of.update({f['name']: 'b'}) %}{% endfor %}
{%- for f in features_of('invoice_latest') %}{% do alias_of.update({f['name']: 'li'}) %}{% endfor %}
{%- for f in ticket_features %}{% do alias_of.update({f['name']: 't'}) %}{% endfor %}
{%- for f in subscription_features %}{% do alias_of.update({f['name']: 'sb'}) %}{% endfor %}
{%- for f in latest_features %}{% do alias_of.update({f['name']: 'sl'}) %}{% endfor %}
{%- set known = ['p.valid_from'] %}
with snapshots as (
    select
        snapshot_date,
        cast(snapshot_date as timestamp) as snapshot_at
    from {{ ref('snapshot_dates') }}
),

population as (
    -- The account version in force at T, for customers signed up and not cancelled as known at T.
    select
        s.snapshot_date,
        s.snapshot_at,
        v.customer_id,
        {%- for f in features_of('attribute') %}
        v.{{ q(f['column']) }} as {{ q(f['name']) }},
        {%- endfor %}
        v.valid_from,
        s.snapshot_date - cast(v.signup_at as date) as tenure_days
    from snapshots as s
    inner join {{ ref('int_account_versions') }} as v
        on
            v.valid_from < s.snapshot_at
            and (v.valid_to is null or v.valid_to >= s.snapshot_at)
    inner join {{ ref('int_customer_churn') }} as c
        on c.customer_id = v.customer_id
    where
        v.signup_at < s.snapshot_at
        {%- if b['has_versions'] %}
        and v.cancelled_at is null
        {%- endif %}
        -- No cancellation known at T, whatever was written after it.
        and (c.churn_recorded_at is null or c.churn_recorded_at >= s.snapshot_at)
)
{%- if changes %}
{%- do known.append('ac.last_known_at') %},

account_changes as (
    select
        p.snapshot_date,
        p.customer_id,
        {%- for f in changes %}
        {%- for line in feature_aggregates(f) %}
        {{ line }},
        {%- endfor %}
        {%- endfor %}
        max(w.valid_from) as last_known_at
    from population as p
    inner join {{ ref('int_account_versions') }} as w
        on
            w.customer_id = p.customer_id
            and w.version_number > 1
            and w.valid_from < p.snapshot_at
            and w.valid_from >= p.snapshot_at - interval '{{ changes[0]['window'] }} days'
    group by p.snapshot_date, p.customer_id
)
{%- endif %}
{%- do known.append('u.last_known_at') %},

usage as (
    select
        p.snapshot_date,
        p.customer_id,
        {%- for f in usage_features %}
        {%- for line in feature_aggregates(f) %}
        {{ line }},
        {%- endfor %}
        {%- endfor %}
        max(u.event_date) as last_active_date,
        max(u.known_at) as last_known_at
    from population as p
    inner join {{ ref('int_daily_usage') }} as u
        on
            u.customer_id = p.customer_id
            and u.event_date >= p.snapshot_date - {{ look_back }}
            and u.known_at <= p.snapshot_at
    group by p.snapshot_date, p.customer_id
)
{%- if user_features %},

user_last as (
    -- Each user's last active day in the look-back window, per event type and over all types
    -- (all_types = 1): a user counts in a window when that day falls in it, which costs far
    -- less than a distinct count per type and window.
    select
        p.snapshot_date,
        p.customer_id,
        u.event_type,
        u.user_id,
        grouping(u.event_type) as all_types,
        max(u.event_date) as last_date
    from population as p
    inner join {{ ref('int_daily_users') }} as u
        on
            u.customer_id = p.customer_id
            and u.event_date >= p.snapshot_date - {{ look_back }}
            and u.event_date < p.snapshot_date
    group by grouping sets (
        (p.snapshot_date, p.customer_id, u.event_type, u.user_id),
        (p.snapshot_date, p.customer_id, u.user_id)
    )
),

users as (
    select
        l.snapshot_date,
        l.customer_id
        {%- for f in user_features %}
        {%- for line in feature_aggregates(f) %},
        {{ line }}
        {%- endfor %}
        {%- endfor %}
    from user_last as l
    group by l.snapshot_date, l.customer_id
)
{%- endif %}
{%- if has_source('invoices') %}
{%- do known.append('b.last_known_at') %},

billing as (
    select
        p.snapshot_date,
        p.customer_id,
        {%- for f in billing_features %}
        {%- for line in feature_aggregates(f) %}
        {{ line }},
        {%- endfor %}
        {%- endfor %}
        max(case when i.is_late and i.late_known_at <= p.snapshot_at then i.late_known_at else i.issued_at end)
            as last_known_at
    from population as p
    inner join {{ ref('int_billing_events') }} as i
        on
            i.customer_id = p.customer_id
            and i.issued_at < p.snapshot_at
    group by p.snapshot_date, p.customer_id
)
{%- if features_of('invoice_latest') %},

latest_invoice as (
    select
        snapshot_date,
        customer_id,
        amount
    from (
        select
            p.snapshot_date,
            p.customer_id,
            i.amount,
            row_number() over (
                partition by p.snapshot_date, p.customer_id
                order by i.issued_at desc, i.invoice_id desc
            ) as invoice_rank
        from population as p
        inner join {{ ref('int_billing_events') }} as i
            on
                i.customer_id = p.customer_id
                and i.issued_at < p.snapshot_at
    ) as ranked
    where invoice_rank = 1
)
{%- endif %}
{%- endif %}
{%- if has_source('tickets') %}
{%- do known.append('t.last_known_at') %},

tickets as (
    select
        p.snapshot_date,
        p.customer_id,
        {%- for f in ticket_features %}
        {%- for line in feature_aggregates(f) %}
        {{ line }},
        {%- endfor %}
        {%- endfor %}
        max(case when t.resolved_at < p.snapshot_at then t.resolved_at else t.created_at end) as last_known_at
    from population as p
    inner join {{ ref('int_ticket_events') }} as t
        on
            t.customer_id = p.customer_id
            and t.created_at < p.snapshot_at
    group by p.snapshot_date, p.customer_id
)
{%- endif %}
{%- if has_source('subscriptions') %}
{%- do known.append('sb.last_known_at') %},

subscriptions as (
    select
        p.snapshot_date,
        p.customer_id,
        {%- for f in subscription_features %}
        {%- for line in feature_aggregates(f) %}
        {{ line }},
        {%- endfor %}
        {%- endfor %}
        greatest(
            max(s.started_at),
            coalesce(max(case when s.ended_at < p.snapshot_at then s.ended_at end), max(s.started_at))
        ) as last_known_at
    from population as p
    inner join {{ ref('stg_subscriptions') }} as s
        on
            s.customer_id = p.customer_id
            and s.started_at < p.snapshot_at
    group by p.snapshot_date, p.customer_id
)
{%- if latest_features %},

latest_subscription as (
    -- The largest subscription running at T (by MRR, then the latest started).
    select
        snapshot_date,
        customer_id
        {%- for f in latest_features %},
        {{ q(f['column']) }} as {{ q(f['name']) }}
        {%- endfor %}
    from (
        select
            p.snapshot_date,
            p.customer_id,
            {%- for f in latest_features %}
            s.{{ q(f['column']) }},
            {%- endfor %}
            row_number() over (
                partition by p.snapshot_date, p.customer_id
                order by s.mrr desc, s.started_at desc
            ) as subscription_rank
        from population as p
        inner join {{ ref('stg_subscriptions') }} as s
            on
                s.customer_id = p.customer_id
                and {{ running('p.snapshot_at') }}
    ) as ranked
    where subscription_rank = 1
)
{%- endif %}
{%- endif %}

select
    p.customer_id,
    p.snapshot_date,
    {%- for f in b['features'] %}
    {{ feature_column(f, alias_of.get(f['name'], 'p')) }} as {{ q(f['name']) }},
    {%- endfor %}
    greatest(
        {%- for k in known %}
        coalesce({{ k }}, p.valid_from){{ "," if not loop.last }}
        {%- endfor %}
    ) as source_data_as_of
from population as p
{% if changes %}
left join account_changes as ac
    on ac.snapshot_date = p.snapshot_date and ac.customer_id = p.customer_id
{% endif %}
left join usage as u
    on u.snapshot_date = p.snapshot_date and u.customer_id = p.customer_id
{% if user_features %}
left join users as us
    on us.snapshot_date = p.snapshot_date and us.customer_id = p.customer_id
{% endif %}
{% if has_source('invoices') %}
left join billing as b
    on b.snapshot_date = p.snapshot_date and b.customer_id = p.customer_id
{% if features_of('invoice_latest') %}
left join latest_invoice as li
    on li.snapshot_date = p.snapshot_date and li.customer_id = p.customer_id
{% endif %}
{% endif %}
{% if has_source('tickets') %}
left join tickets as t
    on t.snapshot_date = p.snapshot_date and t.customer_id = p.customer_id
{% endif %}
{% if has_source('subscriptions') %}
left join subscriptions as sb
    on sb.snapshot_date = p.snapshot_date and sb.customer_id = p.customer_id
{% if latest_features %}
left join latest_subscription as sl
    on sl.snapshot_date = p.snapshot_date and sl.customer_id = p.customer_id
{% endif %}
{% endif %}

{#- The expressions of the generated features. The catalogue (churn_platform/business/catalogue.py)
    names each feature and its aggregate kind ("agg") with its parameters; customer_features
    computes one column per entry, in the catalogue's order, from the CTE of its source. -#}

{% macro q(name) %}{{ return('"' ~ name ~ '"') }}{% endmacro %}

{#- An exact sum (as decimals: a parallel sum of doubles depends on the order of the rows, and the
    same data must give the same features and models in every run), returned as a double. -#}
{% macro exact_sum(condition, value) %}
    {{- return("cast(sum(case when " ~ condition ~ " then cast(" ~ value ~ " as decimal(18, 4)) else 0 end) as double precision)") -}}
{% endmacro %}

{#- The aggregates a source's CTE computes for one feature (each a "expr as name" line), or none. -#}
{% macro feature_aggregates(f) %}
    {%- set name = f['name'] %}
    {%- set w = f.get('window') %}
    {%- set in_window = "u.event_date >= p.snapshot_date - " ~ w %}
    {%- set prior = "u.event_date >= p.snapshot_date - " ~ (2 * (w or 0)) ~ " and u.event_date < p.snapshot_date - " ~ w %}
    {%- set is_type = "u.event_type = " ~ lit(f.get('event_type', '')) %}
    {%- set a = f['agg'] %}
    {%- set out = [] %}
    {%- if a == 'attribute_changes' %}
        {%- do out.append("sum(case when w." ~ q(f['column']) ~ " <> w." ~ q('previous_' ~ f['column']) ~ " then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'attribute_change' %}
        {%- do out.append("sum(w." ~ q(f['column']) ~ " - w." ~ q('previous_' ~ f['column']) ~ ") as " ~ q(name)) %}
    {%- elif a == 'measure_sum' %}
        {%- do out.append(exact_sum(in_window, "u." ~ q(f['column'])) ~ " as " ~ q(name)) %}
    {%- elif a == 'measure_trend' %}
        {%- do out.append(exact_sum(in_window, "u." ~ q(f['column'])) ~ " as " ~ q('__recent_' ~ name)) %}
        {%- do out.append(exact_sum(prior, "u." ~ q(f['column'])) ~ " as " ~ q('__prior_' ~ name)) %}
    {%- elif a == 'active_days' and business()['events_shape'] == 'daily' %}
        {%- do out.append("count(case when " ~ in_window ~ " then 1 end) as " ~ q(name)) %}
    {%- elif a in ('active_days', 'total_active_days') %}
        {%- do out.append("count(distinct case when " ~ in_window ~ " then u.event_date end) as " ~ q(name)) %}
    {%- elif a == 'type_count' %}
        {%- do out.append("sum(case when " ~ is_type ~ " and " ~ in_window ~ " then u.events else 0 end) as " ~ q(name)) %}
    {%- elif a == 'type_value' %}
        {%- do out.append(exact_sum(is_type ~ " and " ~ in_window, "u.value") ~ " as " ~ q(name)) %}
    {%- elif a == 'type_active_days' %}
        {#- int_daily_usage has one row per customer, day and event type: a count of rows is the count of days. #}
        {%- do out.append("count(case when " ~ is_type ~ " and " ~ in_window ~ " then 1 end) as " ~ q(name)) %}
    {%- elif a == 'type_trend' %}
        {%- do out.append("sum(case when " ~ is_type ~ " and " ~ in_window ~ " then u.events else 0 end) as " ~ q('__recent_' ~ name)) %}
        {%- do out.append("sum(case when " ~ is_type ~ " and " ~ prior ~ " then u.events else 0 end) as " ~ q('__prior_' ~ name)) %}
    {%- elif a == 'type_recency' %}
        {%- do out.append("max(case when " ~ is_type ~ " then u.event_date end) as " ~ q('__last_' ~ name)) %}
    {%- elif a == 'total_count' %}
        {%- do out.append("sum(case when " ~ in_window ~ " then u.events else 0 end) as " ~ q(name)) %}
    {%- elif a == 'total_value' %}
        {%- do out.append(exact_sum(in_window, "u.value") ~ " as " ~ q(name)) %}
    {%- elif a == 'total_trend' %}
        {%- do out.append("sum(case when " ~ in_window ~ " then u.events else 0 end) as " ~ q('__recent_' ~ name)) %}
        {%- do out.append("sum(case when " ~ prior ~ " then u.events else 0 end) as " ~ q('__prior_' ~ name)) %}
    {%- elif a == 'type_users' %}
        {#- Over customer_features' user_last: one row per user and type (and over all types) with their last day. #}
        {%- do out.append("count(case when l.all_types = 0 and l.event_type = " ~ lit(f.get('event_type', '')) ~ " and l.last_date >= l.snapshot_date - " ~ w ~ " then 1 end) as " ~ q(name)) %}
    {%- elif a == 'total_users' %}
        {%- do out.append("count(case when l.all_types = 1 and l.last_date >= l.snapshot_date - " ~ w ~ " then 1 end) as " ~ q(name)) %}
    {%- elif a == 'invoice_count' %}
        {%- do out.append("sum(case when i.invoice_date >= p.snapshot_date - " ~ w ~ " then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'invoice_failed' %}
        {%- do out.append("sum(case when i.is_failed and i.invoice_date >= p.snapshot_date - " ~ w ~ " then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'invoice_late' %}
        {%- do out.append("sum(case when i.is_late and i.late_known_at <= p.snapshot_at and i.invoice_date >= p.snapshot_date - " ~ w ~ " then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'ticket_count' %}
        {%- do out.append("sum(case when t.created_at >= p.snapshot_at - interval '" ~ w ~ " days' then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'ticket_open' %}
        {%- do out.append("sum(case when t.resolved_at is null or t.resolved_at >= p.snapshot_at then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'ticket_satisfaction' %}
        {%- do out.append("cast(avg(case when t.resolved_at >= p.snapshot_at - interval '" ~ w ~ " days' and t.resolved_at < p.snapshot_at then t.satisfaction end) as double precision) as " ~ q(name)) %}
    {%- elif a == 'sub_mrr' %}
        {%- do out.append(exact_sum(running('p.snapshot_at'), 's.mrr') ~ " as " ~ q(name)) %}
    {%- elif a == 'sub_mrr_change' %}
        {%- do out.append(exact_sum(running('p.snapshot_at'), 's.mrr') ~ " - " ~ exact_sum(running("p.snapshot_at - interval '" ~ w ~ " days'"), 's.mrr') ~ " as " ~ q(name)) %}
    {%- elif a == 'sub_active' %}
        {%- do out.append("sum(case when " ~ running('p.snapshot_at') ~ " then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'sub_changes' %}
        {%- do out.append("sum(case when s.started_at >= p.snapshot_at - interval '" ~ w ~ " days' then 1 else 0 end) + sum(case when s.ended_at >= p.snapshot_at - interval '" ~ w ~ " days' and s.ended_at < p.snapshot_at then 1 else 0 end) as " ~ q(name)) %}
    {%- elif a == 'sub_tenure' %}
        {%- do out.append("p.snapshot_date - cast(min(s.started_at) as date) as " ~ q(name)) %}
    {%- elif a == 'sub_current_days' %}
        {%- do out.append("p.snapshot_date - cast(max(case when " ~ running('p.snapshot_at') ~ " then s.started_at end) as date) as " ~ q(name)) %}
    {%- elif a == 'sub_quantity' %}
        {%- do out.append(exact_sum(running('p.snapshot_at'), 's.quantity') ~ " as " ~ q(name)) %}
    {%- elif a == 'sub_quantity_change' %}
        {%- do out.append(exact_sum(running('p.snapshot_at'), 's.quantity') ~ " - " ~ exact_sum(running("p.snapshot_at - interval '" ~ w ~ " days'"), 's.quantity') ~ " as " ~ q(name)) %}
    {%- elif a == 'sub_discount' %}
        {%- do out.append(exact_sum(running('p.snapshot_at'), 's.mrr * coalesce(s.discount, 0)') ~ " / nullif(" ~ exact_sum(running('p.snapshot_at'), 's.mrr') ~ ", 0) as " ~ q(name)) %}
    {%- endif %}
    {{- return(out) }}
{% endmacro %}

{#- A subscription that runs at a time (its end, when it has one, is not yet reached). -#}
{% macro running(at) %}
    {{- return("(s.started_at < " ~ at ~ " and (s.ended_at is null or s.ended_at >= " ~ at ~ "))") -}}
{% endmacro %}

{#- The column of customer_features for one feature, from its source's CTE (alias). -#}
{% macro feature_column(f, alias) %}
    {%- set name = f['name'] %}
    {%- set a = f['agg'] %}
    {%- if a == 'attribute' or a == 'tenure' %}
        {{- return("p." ~ q(name)) }}
    {%- elif a in ('measure_trend', 'type_trend', 'total_trend') %}
        {{- return("cast(coalesce(" ~ alias ~ "." ~ q('__recent_' ~ name) ~ ", 0) + 1 as double precision) / (coalesce(" ~ alias ~ "." ~ q('__prior_' ~ name) ~ ", 0) + 1)") }}
    {%- elif a == 'recency' %}
        {{- return("coalesce(p.snapshot_date - " ~ alias ~ ".last_active_date, " ~ (f['window'] + 1) ~ ")") }}
    {%- elif a == 'type_recency' %}
        {{- return("coalesce(p.snapshot_date - " ~ alias ~ "." ~ q('__last_' ~ name) ~ ", " ~ (f['window'] + 1) ~ ")") }}
    {%- elif a in ('ticket_satisfaction', 'sub_latest', 'sub_discount') %}
        {{- return(alias ~ "." ~ q(name)) }}
    {%- elif a == 'invoice_latest' %}
        {{- return("coalesce(" ~ alias ~ ".amount, 0)") }}
    {%- else %}
        {{- return("coalesce(" ~ alias ~ "." ~ q(name) ~ ", 0)") }}
    {%- endif %}
{% endmacro %}

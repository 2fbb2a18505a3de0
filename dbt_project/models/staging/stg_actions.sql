-- Retention contacts as loaded, typed, one row per contact, the arm mapped to treated or control
-- (optional source).
{{ config(enabled=has_source('actions')) }}
{%- set treated = business()['treated_arms'] %}
select
    cast(action_id as varchar) as action_id,
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(contacted_at as timestamp) as contacted_at,
    cast(cast(contacted_at as timestamp) as date) as contact_date,
    cast(campaign as varchar) as campaign,
    case
        when lower(cast(arm as varchar)) in ({% for v in treated %}'{{ v }}'{{ ", " if not loop.last }}{% endfor %})
            then 'treated'
        else 'control'
    end as arm,
    cast(offer as varchar) as offer,
    coalesce(cast(cost as double precision), 0.0) as cost
from {{ source('raw', 'actions') }}

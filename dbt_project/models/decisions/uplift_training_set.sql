-- What an uplift model learns from: each matured contact (campaign_outcomes) with the customer's
-- features at the latest snapshot on or before the contact, its arm and whether the customer
-- churned within the horizon after it.
{{ config(enabled=has_source('actions')) }}
with candidates as (
    select
        o.action_id,
        o.campaign,
        o.contact_date,
        o.arm,
        o.churned,
        f.customer_id,
        f.snapshot_date,
        row_number() over (partition by o.action_id order by f.snapshot_date desc) as nearest
    from {{ ref('campaign_outcomes') }} as o
    inner join {{ ref('customer_features') }} as f
        on
            o.customer_id = f.customer_id
            and f.snapshot_date <= o.contact_date
            and f.snapshot_date > o.contact_date - 62
    where o.matured
)

select
    c.action_id,
    c.campaign,
    c.contact_date,
    c.arm,
    c.churned,
    f.*
from candidates as c
inner join {{ ref('customer_features') }} as f
    on
        c.customer_id = f.customer_id
        and c.snapshot_date = f.snapshot_date
where c.nearest = 1

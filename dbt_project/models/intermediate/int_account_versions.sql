-- Account history as validity intervals: each version holds from its updated_at until the next
-- version's. A customer as known at T is the version with valid_from < T <= valid_to (valid_to is
-- empty for the current version). previous_<attribute> holds the attributes whose changes are features.
select
    customer_id,
    signup_at,
    cancelled_at,
    {%- for name in business()['attributes'] %}
    {{ q(name) }},
    {%- endfor %}
    {%- for name in business()['tracked_attributes'] %}
    lag({{ q(name) }}) over (partition by customer_id order by updated_at) as {{ q('previous_' ~ name) }},
    {%- endfor %}
    updated_at as valid_from,
    lead(updated_at) over (partition by customer_id order by updated_at) as valid_to,
    row_number() over (partition by customer_id order by updated_at) as version_number
from {{ ref('stg_accounts') }}

-- Accounts as loaded (typed by the source's data contract): one row per customer and version.
-- Without a declared version column each customer has one row, valid from signup.
select
    customer_id,
    signup_at,
    cancelled_at,
    updated_at
    {%- for name in business()['attributes'] %},
    {{ adapter.quote(name) }}
    {%- endfor %}
from {{ source('raw', 'accounts') }}

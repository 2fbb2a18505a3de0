-- Accounts as loaded (checked by the source's data contract): one row per customer and version,
-- typed. Without a declared version column each customer has one row, valid from signup.
select
    cast(customer_id as {{ customer_id_type() }}) as customer_id,
    cast(signup_at as timestamp) as signup_at,
    cast(cancelled_at as timestamp) as cancelled_at,
    cast(updated_at as timestamp) as updated_at{% for name in business()['attributes'] %},
    {{ q(name) }}{% endfor %}
from {{ source('raw', 'accounts') }}

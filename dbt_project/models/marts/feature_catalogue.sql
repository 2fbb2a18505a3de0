-- The feature catalogue this build computed (the declaration's, passed as the variable churn): one
-- row per feature column of customer_features, in order. Training rebuilds each feature's meaning
-- from the declaration and records the catalogue with the model; the API's schema, drift and the
-- docs read it from there.
{%- set features = business()['features'] %}
select
    cast(catalogue.position as integer) as position,
    cast(catalogue.name as varchar) as name,
    cast(catalogue.kind as varchar) as kind,
    cast(catalogue.role as varchar) as source_role,
    cast(catalogue.spec as varchar) as spec
from (
    values
    {%- for f in features %}
    (
        {{ loop.index }},
        {{ lit(f['name']) }},
        {{ lit(f['kind']) }},
        {{ lit(f['role']) }},
        {{ lit(tojson(f)) }}
    ){{ "," if not loop.last }}
    {%- endfor %}
) as catalogue (position, name, kind, role, spec)

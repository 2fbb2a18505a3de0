{#- The declared business, as the platform passes it (dbt --vars '{"churn": ...}'; churn-platform
    dbt-vars prints it for a dbt run by hand). See churn_platform/business/catalogue.py. -#}
{% macro business() %}
    {{ return(var('churn')) }}
{% endmacro %}

{% macro has_source(role) %}
    {{ return(role in var('churn')['sources']) }}
{% endmacro %}

{#- The SQL type of the customer's key. -#}
{% macro customer_id_type() %}
    {{ return('varchar' if var('churn')['id_type'] == 'text' else 'bigint') }}
{% endmacro %}

{#- The features of the catalogue computed by one aggregate kind (or kinds). -#}
{% macro features_of() %}
    {% set found = [] %}
    {% for f in var('churn')['features'] %}
        {% if f['agg'] in varargs %}{% do found.append(f) %}{% endif %}
    {% endfor %}
    {{ return(found) }}
{% endmacro %}

{#- A text literal. -#}
{% macro lit(value) %}
    {{ return("'" ~ (value | string).replace("'", "''") ~ "'") }}
{% endmacro %}

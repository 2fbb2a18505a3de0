{#-
    Microbatch on PostgreSQL as on DuckDB (dbt-duckdb's own macro): each batch replaces its
    window of event_time, deleting the target's rows in it and inserting the batch. dbt-postgres
    would instead merge on a unique_key, which keeps rows that have left the source (a day of
    usage landed again with a row now quarantined); the daily partitions need the replacement.
-#}
{% macro postgres__get_incremental_microbatch_sql(arg_dict) -%}
    {%- set event_time = config.get('event_time') -%}
    {%- if not event_time -%}
        {{ exceptions.raise_compiler_error("microbatch needs an 'event_time' model config") }}
    {%- endif -%}
    {%- set batch = model.get('batch') -%}
    {%- set batch_start = batch.get('event_time_start') if batch else none -%}
    {%- set batch_end = batch.get('event_time_end') if batch else none -%}
    {%- if not (batch_start and batch_end) -%}
        {{ exceptions.raise_compiler_error("microbatch needs the batch's event_time_start and event_time_end") }}
    {%- endif -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {%- set in_batch -%}
        {{ event_time }} >= '{{ batch_start }}' and {{ event_time }} < '{{ batch_end }}'
    {%- endset -%}

    delete from {{ target }}
    where {{ in_batch }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
    where {{ in_batch }};
{%- endmacro %}

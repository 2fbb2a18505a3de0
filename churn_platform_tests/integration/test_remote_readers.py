"""The S3 reader against a real S3-compatible endpoint (a moto server over HTTP), and the
PostgreSQL reader against the local PostgreSQL server."""

from __future__ import annotations

import io
import os
import uuid

import numpy as np
import pandas as pd
import pytest

from churn_platform.defs.resources import SourceResource
from churn_platform.simulation.generator import SOURCE_NAMES, GeneratorConfig, generate
from churn_platform.sources.readers import SourceError
from churn_platform_tests.business import CONSUMER

PG_URL = os.environ.get("CHURN_PLATFORM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def data():
    return generate(GeneratorConfig(customers=60, days=90, seed=12))


@pytest.fixture(scope="module")
def s3_endpoint(monkeypatch_module):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for var, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch_module.setenv(var, value)
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_s3_prefix_reads_parquet_and_csv(s3_endpoint, data, tmp_path):
    resource = SourceResource(sources="s3://landing/churn/2025", s3_endpoint_url=s3_endpoint)
    client = resource.s3_client()
    client.create_bucket(Bucket="landing")
    for name in SOURCE_NAMES:
        frame = getattr(data, name)
        buffer = io.BytesIO()
        if name == "support_tickets":  # one source as CSV, as exports often are
            frame.to_csv(buffer, index=False)
            key = f"churn/2025/{name}.csv"
        else:
            frame.to_parquet(buffer, index=False)
            key = f"churn/2025/{name}.parquet"
        client.put_object(Bucket="landing", Key=key, Body=buffer.getvalue())

    assert resource.kind == "s3"
    for name in ("crm_customers", "usage_events", "billing_invoices"):
        pd.testing.assert_frame_equal(resource.load(name), getattr(data, name))
    tickets = resource.load("support_tickets")
    assert len(tickets) == len(data.support_tickets)
    assert list(tickets.columns) == list(data.support_tickets.columns)


def test_s3_missing_object_and_bucket_are_clear_errors(s3_endpoint, tmp_path):
    empty = SourceResource(sources="s3://empty-landing/nowhere", s3_endpoint_url=s3_endpoint)
    empty.s3_client().create_bucket(Bucket="empty-landing")
    with pytest.raises(SourceError, match=r"s3://empty-landing/nowhere/usage_events\.parquet"):
        empty.load("usage_events")
    with pytest.raises(SourceError, match="bucket 'no-such-bucket' does not exist"):
        SourceResource(sources="s3://no-such-bucket/x", s3_endpoint_url=s3_endpoint).load("usage_events")


@pytest.fixture
def pg_schema():
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg2://"))
    schema = f"churn_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as con:
        con.execute(sa.text(f'create schema "{schema}"'))
    yield engine, schema
    with engine.begin() as con:
        con.execute(sa.text(f'drop schema "{schema}" cascade'))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_tables_are_read_per_source(pg_schema, data, tmp_path):
    engine, schema = pg_schema
    for name in SOURCE_NAMES:
        getattr(data, name).to_sql(name, engine, schema=schema, index=False)
    resource = SourceResource(sources=f"{PG_URL}?schema={schema}")
    assert resource.kind == "postgres"
    for name in SOURCE_NAMES:
        got = resource.load(name)
        want = getattr(data, name)
        assert len(got) == len(want)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_series_equal(got[want.columns[0]], want[want.columns[0]], check_dtype=False)


@pytest.mark.postgres
def test_postgres_missing_table_and_unreachable_server_are_clear_errors(pg_schema, tmp_path):
    _, schema = pg_schema
    with pytest.raises(SourceError, match=f"no table {schema}.usage_events"):
        SourceResource(sources=f"{PG_URL}?schema={schema}").load("usage_events")
    with pytest.raises(SourceError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1"):
        SourceResource(sources="postgresql://postgres@127.0.0.1:1/postgres").load("usage_events")


def test_origin_never_shows_a_password(tmp_path):
    resource = SourceResource(sources="postgresql://app:s3cret@db.internal:5432/crm?schema=raw")
    assert "s3cret" not in resource.origin
    assert resource.origin == "postgres:db.internal:5432/crm?schema=raw"


@pytest.fixture(scope="module")
def app_exports():
    """The consumer app's exports, without the declaration the simulation writes: a business's own files
    (with the offers of a campaign on day 150, a tenth of them held out)."""
    from churn_platform.simulation import retention
    from churn_platform.simulation.consumer import user_key

    users = user_key(np.arange(1, 301))
    arms = np.where(np.arange(300) % 10 == 0, "control", "treated")
    sent = retention.contacts("consumer_app", users, arms, "2025-05-31T09:00", "win_back_may")
    return generate(GeneratorConfig(customers=300, days=200, seed=9, business="consumer_app"), actions=sent)


def _init_and_check(resource, origin: str):
    from churn_platform.apps.onboard import check_business, init_declaration
    from churn_platform.business.declaration import parse_declaration

    text, guess = init_declaration(resource, origin, business="exports")
    assert guess.problems == [], guess.problems
    declaration = parse_declaration(text, origin)
    assert declaration.present == ("accounts", "events", "subscriptions", "invoices", "actions")
    actions = declaration.sources.actions
    assert (actions.treated, actions.control) == (("treatment",), ("holdout",))
    # The columns guessed are the ones the app's own declaration names.
    assert actions.columns.model_dump() == CONSUMER.sources.actions.columns.model_dump()
    assert declaration.customer_id_type == "text" and declaration.label.cancellation == "subscriptions"
    assert declaration.sources.events.columns.type == "event_name"
    report = check_business(declaration, resource)
    assert report.ok, report.problems
    assert all(c.quarantined == 0 and c.received > 0 for c in report.sources)
    assert sum(1 for s in report.snapshots if s["labelled"]) >= 3
    return declaration


def test_init_and_check_read_an_s3_prefix(s3_endpoint, app_exports):
    resource = SourceResource(sources="s3://exports/app", s3_endpoint_url=s3_endpoint)
    client = resource.s3_client()
    client.create_bucket(Bucket="exports")
    for name, frame in app_exports.tables.items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        client.put_object(Bucket="exports", Key=f"app/{name}.parquet", Body=buffer.getvalue())
    declaration = _init_and_check(resource, "s3://exports/app")
    assert declaration.sources.accounts.location == "users.parquet"


@pytest.mark.postgres
def test_init_and_check_read_postgresql_tables(pg_schema, app_exports):
    engine, schema = pg_schema
    for name, frame in app_exports.tables.items():
        frame.to_sql(name, engine, schema=schema, index=False)
    resource = SourceResource(sources=f"{PG_URL}?schema={schema}")
    declaration = _init_and_check(resource, f"{PG_URL}?schema={schema}")
    assert declaration.sources.accounts.location == "users"

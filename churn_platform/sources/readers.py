"""Reading the raw sources: from a folder of files, an S3 prefix or PostgreSQL tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churn_platform.sources.contracts import CONTRACTS, SOURCE_NAMES

# The columns each source must have (its contract's); a source without them is rejected with their names.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {name: c.column_names for name, c in CONTRACTS.items()}


class SourceError(ValueError):
    """A source cannot be read: missing file, missing columns, unreadable format."""


def find_source_file(directory: Path, name: str) -> Path:
    for suffix in (".parquet", ".csv"):
        candidate = Path(directory) / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    raise SourceError(f"source {name!r} not found: expected {name}.parquet or {name}.csv in {directory}")


def read_source_file(directory: Path, name: str) -> pd.DataFrame:
    if name not in SOURCE_NAMES:
        raise SourceError(f"unknown source {name!r}; the sources are {', '.join(SOURCE_NAMES)}")
    path = find_source_file(directory, name)
    return _check_columns(_read_bytes(path.read_bytes(), path.suffix, str(path)), name, str(path))


def _read_bytes(payload: bytes, suffix: str, where: str) -> pd.DataFrame:
    import io

    try:
        buffer = io.BytesIO(payload)
        return pd.read_parquet(buffer) if suffix == ".parquet" else pd.read_csv(buffer)
    except Exception as exc:
        raise SourceError(f"cannot read {where}: {exc}") from exc


def _check_columns(frame: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise SourceError(f"{where} lacks required columns: {', '.join(missing)}")
    return frame


def read_source_s3(client, uri: str, name: str) -> pd.DataFrame:
    """Read ``<uri>/<name>.parquet`` (or ``.csv``) from S3 with a boto3 client."""
    if name not in SOURCE_NAMES:
        raise SourceError(f"unknown source {name!r}; the sources are {', '.join(SOURCE_NAMES)}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    tried = []
    for suffix in (".parquet", ".csv"):
        key = f"{prefix}/{name}{suffix}" if prefix else f"{name}{suffix}"
        tried.append(f"s3://{bucket}/{key}")
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            continue
        except client.exceptions.NoSuchBucket as exc:
            raise SourceError(f"bucket {bucket!r} does not exist ({uri})") from exc
        return _check_columns(_read_bytes(body, suffix, tried[-1]), name, tried[-1])
    raise SourceError(f"source {name!r} not found: tried {' and '.join(tried)}")


def read_source_postgres(url: str, name: str) -> pd.DataFrame:
    """Read table ``<schema>.<name>`` from PostgreSQL; the schema comes from ``?schema=`` (default ``public``)."""
    from urllib.parse import parse_qs, urlsplit, urlunsplit

    import sqlalchemy as sa

    if name not in SOURCE_NAMES:
        raise SourceError(f"unknown source {name!r}; the sources are {', '.join(SOURCE_NAMES)}")
    parts = urlsplit(url)
    schema = parse_qs(parts.query).get("schema", ["public"])[0]
    engine_url = urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, "", ""))
    engine = sa.create_engine(engine_url)
    try:
        with engine.connect() as con:
            if not sa.inspect(con).has_table(name, schema=schema):
                raise SourceError(f"source {name!r} not found: no table {schema}.{name} in {parts.path.lstrip('/')}")
            frame = pd.read_sql_table(name, con, schema=schema)
    except sa.exc.OperationalError as exc:
        raise SourceError(f"cannot connect to PostgreSQL at {parts.hostname}:{parts.port or 5432}: {exc.orig}") from exc
    finally:
        engine.dispose()
    return _check_columns(frame, name, f"{schema}.{name}")


def upload_dir_to_s3(client, directory: Path, uri: str) -> list[str]:
    """Upload every file under ``directory`` to the S3 prefix ``uri`` (a landing zone), keeping
    relative paths; returns the keys written."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    keys = []
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        relative = path.relative_to(directory).as_posix()
        key = f"{prefix}/{relative}" if prefix else relative
        try:
            client.upload_file(str(path), bucket, key)
        except client.exceptions.NoSuchBucket as exc:
            raise SourceError(f"bucket {bucket!r} does not exist ({uri})") from exc
        keys.append(key)
    return keys

"""Reading the raw sources: from a folder of files, an S3 prefix or PostgreSQL tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SUFFIXES = (".parquet", ".csv")


class SourceError(ValueError):
    """A source cannot be read: missing file, missing columns, unreadable format."""


def _candidates(location: str) -> list[str]:
    """The file names a declared location may mean: itself when it has a suffix, else each suffix."""
    if location.lower().endswith(SUFFIXES):
        return [location]
    return [f"{location}{suffix}" for suffix in SUFFIXES]


def find_source_file(directory: Path, location: str) -> Path:
    """The file of a declared ``location`` (a name with or without .parquet/.csv, relative to
    ``directory``, or an absolute path)."""
    names = _candidates(location)
    for name in names:
        candidate = Path(directory) / name
        if candidate.exists():
            return candidate
    raise SourceError(f"source file not found: expected {' or '.join(names)} in {directory}")


def read_source_file(directory: Path, location: str) -> pd.DataFrame:
    path = find_source_file(directory, location)
    return _read_bytes(path.read_bytes(), path.suffix.lower(), str(path))


def _read_bytes(payload: bytes, suffix: str, where: str) -> pd.DataFrame:
    import io

    try:
        buffer = io.BytesIO(payload)
        # CSV as text: the data contract types every column, the same way for every format.
        return (
            pd.read_parquet(buffer) if suffix == ".parquet" else pd.read_csv(buffer, dtype=str, keep_default_na=False)
        )
    except Exception as exc:
        raise SourceError(f"cannot read {where}: {exc}") from exc


def read_source_s3(client, uri: str, location: str) -> pd.DataFrame:
    """Read ``<uri>/<location>`` (``.parquet`` or ``.csv``) from S3 with a boto3 client."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    tried = []
    for name in _candidates(location):
        suffix = "." + name.rsplit(".", 1)[1].lower()
        key = f"{prefix}/{name}" if prefix else name
        tried.append(f"s3://{bucket}/{key}")
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            continue
        except client.exceptions.NoSuchBucket as exc:
            raise SourceError(f"bucket {bucket!r} does not exist ({uri})") from exc
        return _read_bytes(body, suffix, tried[-1])
    raise SourceError(f"source not found: tried {' and '.join(tried)}")


def read_source_postgres(url: str, name: str) -> pd.DataFrame:
    """Read table ``<schema>.<name>`` from PostgreSQL; the schema comes from ``?schema=`` (default ``public``)."""
    from urllib.parse import parse_qs, urlsplit, urlunsplit

    import sqlalchemy as sa

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
    return frame


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

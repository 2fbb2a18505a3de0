"""The prediction log writer: durable Parquet files, bounded loss, never an exception to the caller."""

from __future__ import annotations

import asyncio
import datetime as dt

from churn_platform.serving.prediction_log import PredictionLogWriter, log_schema, read_prediction_log
from churn_platform_tests.business import CATALOGUE


def rows(n: int, request_id: str = "r1") -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    return [
        {
            **CATALOGUE.example_record(),
            "request_id": request_id,
            "logged_at": now,
            "endpoint": "/v1/predict",
            "customer_id": str(i),
            "model_name": "churn_model",
            "model_version": "3",
            "churn_probability": i / (n + 1),
        }
        for i in range(n)
    ]


def test_rows_are_written_to_dated_parquet_files_and_read_back(tmp_path):
    writer = PredictionLogWriter(tmp_path, writer_id="w1", catalogue=CATALOGUE)
    writer.append(rows(3))
    assert read_prediction_log(tmp_path).empty  # nothing visible before a flush
    assert writer.flush() == 3
    writer.append(rows(2, "r2"))
    assert writer.flush() == 2
    files = sorted(tmp_path.glob("date=*/part-w1-*.parquet"))
    assert len(files) == 2 and not list(tmp_path.glob("date=*/.*.tmp"))
    frame = read_prediction_log(tmp_path)
    assert list(frame.columns) == log_schema(CATALOGUE).names
    assert len(frame) == 5 and sorted(frame["request_id"].unique()) == ["r1", "r2"]
    assert frame["plan"].eq(CATALOGUE.example_record()["plan"]).all()


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path):
    blocked = tmp_path / "log"
    blocked.write_text("a file where the directory should be")
    writer = PredictionLogWriter(blocked)
    writer.append(rows(4))
    assert writer.flush() == 0
    assert writer.buffered == 4 and writer.last_error
    blocked.unlink()
    assert writer.flush() == 4
    assert writer.last_error is None and len(read_prediction_log(blocked)) == 4


def test_beyond_the_buffer_bound_rows_are_dropped_and_counted(tmp_path):
    writer = PredictionLogWriter(tmp_path, max_buffer_rows=1000)
    assert writer.append(rows(900)) == 0
    assert writer.append(rows(300)) == 200
    assert writer.dropped == 200 and writer.buffered == 1000
    assert writer.flush() == 1000


def test_the_background_loop_flushes_without_being_asked(tmp_path):
    async def main():
        writer = PredictionLogWriter(tmp_path, flush_interval_s=0.05)
        writer.start()
        writer.append(rows(7))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if writer.written == 7:
                break
        writer.close()
        return writer.written

    assert asyncio.run(main()) == 7
    assert len(read_prediction_log(tmp_path)) == 7

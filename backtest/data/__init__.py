"""Market data: canonical Arrow schemas, file loading and checks, messages, synthetic samples."""

from __future__ import annotations

from backtest.data.loader import (
    BarStamp,
    FileOptions,
    FileStream,
    LoadResult,
    load_file,
    read_file,
    stream_file,
)
from backtest.data.messages import to_messages
from backtest.data.problems import DataRefused, Problem
from backtest.data.sample import DEFAULT_INSTRUMENTS, SampleSpec, generate_sample
from backtest.data.schema import (
    AUX_KINDS,
    FIXED_COLUMNS,
    KINDS,
    SCHEMAS,
    Kind,
    TableHasher,
    conform,
    empty_table,
    table_hash,
)

__all__ = [
    "AUX_KINDS",
    "DEFAULT_INSTRUMENTS",
    "FIXED_COLUMNS",
    "KINDS",
    "SCHEMAS",
    "BarStamp",
    "DataRefused",
    "FileOptions",
    "FileStream",
    "Kind",
    "LoadResult",
    "Problem",
    "SampleSpec",
    "TableHasher",
    "conform",
    "empty_table",
    "generate_sample",
    "load_file",
    "read_file",
    "stream_file",
    "table_hash",
    "to_messages",
]

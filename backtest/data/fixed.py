"""Fixed-point columns in Arrow: int64 raw values (value × 10**9) ↔ decimal128 with scale 9.

The conversion is a reinterpretation of the integer, never a trip through floats: the low 64
bits of a decimal128 with scale 9 *are* the fixed-point raw value when the value fits.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from runtime.values import FIXED_PRECISION

__all__ = ["DECIMAL_TYPE", "decimal_to_raw", "is_fixed_decimal", "raw_to_decimal"]

#: The Arrow type of a ClickHouse ``Decimal64(9)`` column.
DECIMAL_TYPE = pa.decimal128(18, FIXED_PRECISION)


def is_fixed_decimal(data_type: pa.DataType) -> bool:
    """True for decimal types with scale 9 (the ones that travel as int64 raw values)."""
    return bool(pa.types.is_decimal128(data_type) and data_type.scale == FIXED_PRECISION)


def raw_to_decimal(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """int64 raw values → decimal128(18, 9) with the same value (nulls kept)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    raw = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    words = np.empty((len(raw), 2), dtype="<i8")
    words[:, 0] = raw
    words[:, 1] = raw >> 63  # sign extension
    validity = None if array.null_count == 0 else array.is_valid().buffers()[1]
    return pa.Array.from_buffers(
        DECIMAL_TYPE,
        len(raw),
        [validity, pa.py_buffer(words.tobytes())],
        null_count=array.null_count,
        offset=0,
    )


def decimal_to_raw(array: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """decimal128 with scale 9 → (int64 raw values, boolean mask of values too big for int64)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    words = np.frombuffer(array.buffers()[1], dtype="<i8")
    words = words[2 * array.offset : 2 * (array.offset + len(array))].reshape(-1, 2)
    low, high = words[:, 0], words[:, 1]
    overflow = high != (low >> 63)
    valid = None if array.null_count == 0 else array.is_valid()
    if valid is not None:
        overflow &= valid.to_numpy(zero_copy_only=False)
    raw = pa.array(
        low.copy(),
        type=pa.int64(),
        mask=None if valid is None else ~valid.to_numpy(zero_copy_only=False),
    )
    return raw, overflow

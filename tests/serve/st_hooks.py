"""Schemathesis hooks for ``test_control_live``: ``expected_status`` fails any answer whose
status is not ``TW_ST_EXPECT_STATUS`` (when set): without a token, every generated request —
valid or not, whatever its body, query or headers — must be 401."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.check
def expected_status(ctx: Any, response: Any, case: Any) -> bool | None:
    expected = os.environ.get("TW_ST_EXPECT_STATUS")
    if expected and response.status_code != int(expected):
        raise AssertionError(f"expected {expected}, got {response.status_code}")
    return None

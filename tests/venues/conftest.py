"""Venue tests: shioaji's log goes to a temporary directory, never the working directory."""

from __future__ import annotations

import os
import tempfile

# shioaji's Rust core opens SJ_LOG_PATH (default ./shioaji.log) when it is imported: point it
# away before any test module imports it.
os.environ.setdefault("SJ_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="tw-sj-"), "sj.log"))

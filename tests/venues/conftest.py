"""Venue tests: shioaji's log goes to a temporary directory, never the working directory."""

from __future__ import annotations

import os
import tempfile

# shioaji's Rust core opens SJ_LOG_PATH (default ./shioaji.log) when it is imported: point it
# away before any test module imports it.
os.environ.setdefault("SJ_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="tw-sj-"), "sj.log"))

# Planted credentials for the Shioaji session tests (broker block ``api_key_env`` /
# ``secret_key_env``). Set at import, before the shared Ray cluster starts, so its workers (the
# gateway actor reads credentials from its own environment) inherit them. The tests then look
# for these values everywhere they must never appear: logs, journals, files, errors.
PLANTED_KEY = "planted-sj-key-5b1e9c7d"
PLANTED_SECRET = "planted-sj-secret-0a4f2e68"
os.environ["TW_TEST_SJ_API_KEY"] = PLANTED_KEY
os.environ["TW_TEST_SJ_SECRET_KEY"] = PLANTED_SECRET

# The CCXT and Alpaca fakes' credentials, planted the same way (the fakes check every signed
# request against them; the session tests look for them in every file and log).
from tests.venues.fake_binance import API_KEY as BINANCE_KEY  # noqa: E402
from tests.venues.fake_binance import SECRET as BINANCE_SECRET  # noqa: E402

os.environ["TW_TEST_CCXT_API_KEY"] = BINANCE_KEY
os.environ["TW_TEST_CCXT_SECRET"] = BINANCE_SECRET
from tests.venues.fake_alpaca import KEY_ID as ALPACA_KEY  # noqa: E402
from tests.venues.fake_alpaca import SECRET_KEY as ALPACA_SECRET  # noqa: E402

os.environ["TW_TEST_ALPACA_KEY"] = ALPACA_KEY
os.environ["TW_TEST_ALPACA_SECRET"] = ALPACA_SECRET

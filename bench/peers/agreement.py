"""Run every peer in its own process, check their fills against the exact rule, time them.

``python -m bench.peers.agreement [--n 1000000] [--seed 7] [--repeat 3] [--limit N]``

For each (peer, kind) it runs ``python -m bench.peers.<peer> --json`` ``repeat`` times (the
NautilusTrader peer with bench/.peers/nautilus/bin/python), keeps the median backtest seconds,
whole-process wall seconds and peak RSS, and explains the fills of the first run:

- ``decisions``: events where the peer's target position differs from the exact integer rule, and
  how many of them are exact ties (equal SMAs, which float means break either way);
- ``price_rule``: every fill is checked against the peer's documented fill convention (price and
  ts of the event it fills at); ``violations`` must be 0;
- ``equal_to_exact``: whether the fills equal ``exact_fills`` outright.

Writes bench/results/peers-<kind>-n<N>.json (gitignored) and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import compare_fills, exact_fills, explain_decisions, load_arrays, to_ticks
from bench.datasets import dataset_path

ROOT = Path(__file__).resolve().parents[2]
PEERS = {
    "tradewind": ("bench.peers.tradewind_sma", Path(sys.executable)),
    "backtrader": ("bench.peers.backtrader_sma", Path(sys.executable)),
    "nautilus_trader": ("bench.peers.nautilus_sma", ROOT / "bench/.peers/nautilus/bin/python"),
    "vectorbt": ("bench.peers.vectorbt_sma", Path(sys.executable)),
}


def _price_rule(arrays: dict[str, np.ndarray], peer: str, kind: str, side: str, j: int) -> int:
    """Ticks x 2 of the price the peer's convention gives for a fill at event j."""
    if kind == "bars":
        return 2 * int(to_ticks(arrays["close" if peer == "nautilus_trader" else "open"][j]))
    bid, ask = int(to_ticks(arrays["bid"][j])), int(to_ticks(arrays["ask"][j]))
    if peer == "backtrader":
        return bid + ask  # fed mids as bars: fills at the next mid
    return 2 * (ask if side == "BUY" else bid)


def check(
    arrays: dict[str, np.ndarray],
    peer: str,
    kind: str,
    result: dict[str, Any],
    *,
    fast: int,
    slow: int,
    size: int,
) -> dict[str, Any]:
    fills = result["fills"]
    lag = result.get("fill_lag", 1)
    pos_of_ts = {int(t): k for k, t in enumerate(arrays["ts_ns"].tolist())}
    violations = [
        f
        for f in fills
        if round(2 * float(f[3]) * 100)
        != _price_rule(arrays, peer, kind, f[1], pos_of_ts[int(f[0])])
        or float(f[2]) != size
    ]
    sides = [f[1] for f in fills]
    alternate = all(s == ("BUY" if k % 2 == 0 else "SELL") for k, s in enumerate(sides))
    return {
        "fills": len(fills),
        "equal_to_exact": compare_fills(
            exact_fills(arrays, fast=fast, slow=slow, size=size), fills
        )["equal"],
        "decisions": explain_decisions(
            arrays, fills, fast=fast, slow=slow, size=size, fill_lag=lag
        ),
        "price_rule": {
            "fill_lag": lag,
            "rule": result.get("fill_price_rule", "next open"),
            "violations": len(violations),
            "examples": violations[:3],
            "sides_alternate_from_buy": alternate,
        },
    }


def run_peer(peer: str, data: Path, kind: str, limit: int | None) -> dict[str, Any]:
    module, python = PEERS[peer]
    cmd = [str(python), "-m", module, "--data", str(data), "--kind", kind, "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    wall_s = time.perf_counter() - start
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="peers: agreement and throughput")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--kinds", default="bars,quotes")
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args()
    out_dir = ROOT / "bench/results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds.split(","):
        data = dataset_path(kind, args.n, args.seed)
        arrays = load_arrays(data, limit=args.limit)
        suffix = f"-limit{args.limit}" if args.limit else ""
        out = out_dir / f"peers-{kind}-n{args.n}{suffix}.json"
        report: dict[str, Any] = {"dataset": data.name, "limit": args.limit, "peers": {}}
        if out.exists():  # keep the other peers' entries when re-running some of them
            report["peers"] = json.loads(out.read_text()).get("peers", {})
        for peer in args.peers.split(","):
            runs = [run_peer(peer, data, kind, args.limit) for _ in range(args.repeat)]
            first = runs[0]
            summary = {
                "version": first.get("version"),
                "events": first["events"],
                "backtest_s": [r["backtest_s"] for r in runs],
                "median_backtest_s": statistics.median(r["backtest_s"] for r in runs),
                "median_wall_s": statistics.median(r["wall_s"] for r in runs),
                "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
                "check": check(arrays, peer, kind, first, fast=10, slow=50, size=100),
            }
            for extra in ("backtest_warm_s", "prepare_s"):
                if extra in first:
                    summary[f"median_{extra}"] = statistics.median(r[extra] for r in runs)
            summary["events_per_s"] = first["events"] / summary["median_backtest_s"]
            report["peers"][peer] = summary
            print(
                kind,
                peer,
                json.dumps({k: v for k, v in summary.items() if k != "check"}),
                json.dumps(summary["check"]),
                flush=True,
            )
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""The foundation benchmark: SMA 10/50 crossover on 1M bars and 1M quotes, Tradewind vs peers.

``python -m bench.sma_bench [--n 1000000] [--repeat 3] [--peers tradewind,backtrader,...]``

The last line printed is one JSON object: Tradewind's ratios against each peer (events/s, whole
process, peak memory), the research issue's targets and whether each is met, the loads.

Each engine runs in its own process on the same cached dataset (bench/datasets.py), ``repeat``
times; we report medians of the backtest's own throughput (events/s), the whole-process wall time
and peak RSS, check every engine's fills (decisions against the exact integer rule, prices
against the engine's documented convention: bench/README.md), and print Tradewind's ratios.
Tradewind runs the real engine: kernel, risk checks, order state machine, portfolio, simulated
venue with its fill model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from typing import Any

from bench.common import load_arrays
from bench.datasets import dataset_path
from bench.peers.agreement import PEERS, check, run_peer

# the research issue's targets (issue 17): events/s against each peer, same fills
TARGETS = {("bars", "backtrader"): 40.0, ("bars", "nautilus_trader"): 40.0,
           ("quotes", "nautilus_trader"): 20.0}


def measure(peer: str, kind: str, n: int, seed: int, repeat: int) -> dict[str, Any]:
    data = dataset_path(kind, n, seed)
    runs = [run_peer(peer, data, kind, None) for _ in range(repeat)]
    arrays = load_arrays(data)
    verdict = check(arrays, peer, kind, runs[0], fast=10, slow=50, size=100)
    backtest_s = statistics.median(r["backtest_s"] for r in runs)
    return {
        "events_per_s": runs[0]["events"] / backtest_s,
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "fills": verdict["fills"],
        "decisions_differ": verdict["decisions"]["n_decisions_differ"],
        "ties": verdict["decisions"]["n_exact_ties"],
        "price_violations": verdict["price_rule"]["violations"],
        "rule": verdict["price_rule"]["rule"],
    }


def table(kind: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [f"\n{kind}: {'engine':16} {'events/s':>11} {'wall s':>8} {'peak MB':>8} {'fills':>7} "
           f"{'≠rule(ties)':>12} {'price viol.':>11}  price rule"]
    for peer, r in rows.items():
        out.append(f"{'':{len(kind) + 2}}{peer:16} {r['events_per_s']:>11,.0f} "
                   f"{r['wall_s']:>8.2f} {r['rss_mb']:>8.0f} {r['fills']:>7} "
                   f"{r['decisions_differ']:>5}({r['ties']:>5}) "
                   f"{r['price_violations']:>11}  {r['rule']}")
    tw = rows.get("tradewind")
    if tw is None:
        return out
    for peer, r in rows.items():
        if peer == "tradewind":
            continue
        speed = tw["events_per_s"] / r["events_per_s"]
        wall = r["wall_s"] / tw["wall_s"]
        target = TARGETS.get((kind, peer))
        verdict = "met" if target and speed >= target else "NOT met"
        goal = f" (target ≥ {target:.0f}×: {verdict})" if target else ""
        out.append(f"  tradewind vs {peer}: {speed:.1f}× events/s{goal}, {wall:.1f}× whole "
                   f"process, peak memory {tw['rss_mb'] / r['rss_mb']:.2f}× theirs")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="bars,quotes")
    parser.add_argument("--peers", default=",".join(PEERS))
    args = parser.parse_args()
    summary: dict[str, Any] = {"bench": "sma", "n": args.n, "seed": args.seed,
                               "repeat": args.repeat, "load_before": os.getloadavg()[0],
                               "ratios": {}, "targets": {}, "met": {}, "engines": {}}  # fmt: skip
    for kind in args.kinds.split(","):
        rows: dict[str, dict[str, Any]] = {}
        for peer in args.peers.split(","):
            try:
                rows[peer] = measure(peer, kind, args.n, args.seed, args.repeat)
            except (OSError, RuntimeError) as exc:  # a peer not installed: say so, go on
                print(f"{kind}: {peer} not run: {exc}")
            except Exception as exc:  # a failing peer process must not hide the rest
                print(f"{kind}: {peer} failed: {type(exc).__name__}: {str(exc)[:200]}")
        print("\n".join(table(kind, rows)), flush=True)
        _summarise(summary, kind, rows)
    summary["load_after"] = os.getloadavg()[0]
    print(json.dumps(summary))  # always the last line: ratios, targets, verdicts, figures


def _summarise(summary: dict[str, Any], kind: str, rows: dict[str, dict[str, Any]]) -> None:
    """Tradewind's ratios against each peer that ran (events/s, whole process, peak memory)."""
    summary["engines"][kind] = rows
    tw = rows.get("tradewind")
    if tw is None:
        return
    for peer, r in rows.items():
        if peer == "tradewind":
            continue
        key = f"{kind}_vs_{peer}"
        summary["ratios"][key] = {
            "events_per_s": round(tw["events_per_s"] / r["events_per_s"], 2),
            "whole_process": round(r["wall_s"] / tw["wall_s"], 2),
            "peak_memory": round(tw["rss_mb"] / r["rss_mb"], 2),
        }
        target = TARGETS.get((kind, peer))
        if target is not None:
            summary["targets"][key] = f"events/s >= {target:g}x"
            summary["met"][key] = tw["events_per_s"] / r["events_per_s"] >= target
        if kind == "bars" and peer == "backtrader":  # peak memory below backtrader's
            summary["targets"]["bars_peak_memory_vs_backtrader"] = "< 1.0"
            summary["met"]["bars_peak_memory_vs_backtrader"] = tw["rss_mb"] < r["rss_mb"]


if __name__ == "__main__":
    main()

"""A paper session's files: ``runs/<session_id>/`` with orders, fills, positions, account and
``session.md`` (config hash, seed, guard activations, restarts, final PnL, where things are)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import ray

from actors.config import paper_hash
from runtime.values import FIXED_SCALE

__all__ = ["collect", "write_files"]


def collect(session: Any) -> dict[str, Any]:
    """Everything the files and ``--json`` need, from the actors."""
    feed, risk, records, fills, sup, gw_view, risk_view, gw_health = ray.get([
        session.feed.status.remote(), session.risk.summary.remote(),
        session.risk.records.remote(), session.gateway.fills.remote(),
        session.supervisor.status.remote(), session.gateway.view.remote(),
        session.risk.view.remote(), session.gateway.health.remote(),
    ])
    pnl = (risk["equity"] - risk["initial_cash"]) / FIXED_SCALE
    return {
        "session_id": session.session_id, "config_hash": paper_hash(session.config),
        "seed": session.setup.trading.seed, "orders": risk["orders"], "fills": risk["fills"],
        "broker_fills": len(fills), "pnl": pnl, "restarts": sup["restarts"],
        "state_hash": risk["state_hash"], "trading_state": risk["state"], "feed": feed,
        "risk": risk, "records": records, "fill_records": fills, "supervisor": sup,
        "positions_match": gw_view["positions"] == risk_view["positions"],
        "unpriced_fees": gw_health.get("unpriced_fees", {}),
        "journal_dir": session.setup.journal_dir,
        "output_dir": str(Path(session.config.output_dir).absolute()),
    }


def _fill_rows(fills: list[Any]) -> list[dict[str, Any]]:
    f = FIXED_SCALE
    return [{"ts_event": x.ts_event, "ts_init": x.ts_init, "fill_id": x.fill_id,
             "client_order_id": x.client_order_id, "strategy_id": x.strategy_id,
             "instrument_id": x.instrument_id, "side": int(x.side), "qty": x.last_qty / f,
             "price": x.last_price / f, "fee": x.fee / f, "fee_qty": x.fee_qty / f,
             "liquidity": str(x.liquidity),
             "venue_order_id": x.venue_order_id} for x in fills]


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_files(session: Any, result: dict[str, Any]) -> Path:
    out: Path = Path(session.config.output_dir).absolute() / session.session_id
    out.mkdir(parents=True, exist_ok=True)
    orders = [{k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in o.items()}
              for o in result["records"]["orders"]]
    _write_csv(out / "orders.csv", orders)
    _write_csv(out / "fills.csv", _fill_rows(result["fill_records"]),
               ["ts_event", "ts_init", "fill_id", "client_order_id", "strategy_id",
                "instrument_id", "side", "qty", "price", "fee", "fee_qty", "liquidity",
                "venue_order_id"])
    f = FIXED_SCALE
    positions = [{**p, "quantity": p["quantity"] / f, "realized_pnl": p["realized_pnl"] / f,
                  "fees": p["fees"] / f, "mark": p["mark"] / f, "avg_price": p["avg_price"] / f}
                 for p in result["records"]["positions"]]
    _write_csv(out / "positions.csv", positions,
               ["instrument_id", "quantity", "avg_price", "mark", "realized_pnl", "fees"])
    risk = result["risk"]
    _write_csv(out / "account.csv", [{
        "ts": risk["now"], "cash": risk["cash"] / f, "equity": risk["equity"] / f,
        "realized_pnl": risk["realized"] / f, "unrealized_pnl": risk["unrealized"] / f,
        "fees": risk["fees"] / f, "pnl": result["pnl"], "trading_state": risk["state"]}])
    (out / "session.md").write_text(_session_md(session, result, out))
    return out


def _resumes(session: Any) -> str:
    record = session.claim.record
    changes = record.get("config_changes", [])
    text = f"yes, resume {record['resumes']} of the session first started {record['created_at']}"
    return text + (f"; config changed on resume {len(changes)} time(s), latest to hash "
                   f"`{changes[-1]['config_hash']}`" if changes else "")


def _session_md(session: Any, result: dict[str, Any], out: Path) -> str:
    feed, sup = result["feed"], result["supervisor"]
    guards = feed["state_changes"] or []
    lines = [
        f"# Paper session {result['session_id']}", "",
        f"- config: `{session.config.trading}` (paper config hash `{result['config_hash']}`)",
        f"- seed: {result['seed']}",
        "- resumed: " + (_resumes(session) if result.get("resumed") else "no (a new session)"),
        f"- events: {feed['events']} of {feed['total']}; orders {result['orders']}, "
        f"fills {result['fills']} (broker: {result['broker_fills']}), denials {feed['denials']}",
        f"- final PnL: {result['pnl']:.2f} {session.setup.trading.currency}; "
        f"trading state: {result['trading_state']}",
        f"- state hash: `{result['state_hash']}`",
        f"- positions equal the paper broker's: {result['positions_match']}",
        "- fees charged in an asset no fill valued (not in fees or PnL): "
        + (", ".join(f"{v} {c}" for c, v in result["unpriced_fees"].items()) or "none"),
        f"- restarts: {result['restarts']}" + (f"; escalated: {sup['reason']}"
                                                 if sup["escalated"] else ""),
        f"- stopped by an error: {feed['error']}" if feed.get("error") else
        "- stopped by an error: no",
        "", "## Guard activations", "",
    ]
    lines += [f"- {g['state']}: {g['reason']} (ts {g['ts']})" for g in guards] or ["- none"]
    lines += ["", "## Restarts", ""]
    lines += [f"- {e['child']}: {e['reason']} → {e['action']}" for e in sup["events"]] or ["- none"]
    lines += ["", "## Artifacts", "",
              f"- files: `{out}` (orders.csv, fills.csv, positions.csv, account.csv)",
              f"- journals: `{result['journal_dir']}` (SQLite, one per component; the orders "
              "risk retired in `risk.orders`, older fills in `gateway.fills` or "
              "`broker.<kind>.fills`)", ""]
    return "\n".join(lines)

"""The status page served at ``GET /``: one self-contained HTML file (no build step, no CDN).

It reads the bearer token from the URL fragment (``/#token=…``; a fragment never reaches a
server or its logs), polls ``/status``, ``/positions``, ``/orders`` and ``/pnl`` every second,
and offers the operator buttons (halt, resume, reduce-only, flatten, kill), each behind a
confirmation dialog.
"""

from __future__ import annotations

__all__ = ["STATUS_PAGE"]

STATUS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tradewind session</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
 h1{font-size:1.3em;margin:0 0 .5em} h2{font-size:1.05em;margin:1.2em 0 .4em}
 table{border-collapse:collapse;background:#fff;min-width:20em}
 td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
 th{background:#f0f0f0} .num{text-align:right;font-variant-numeric:tabular-nums}
 #state{font-weight:bold;padding:.15em .5em;border-radius:4px}
 .active{background:#c8f0c8}.reducing{background:#ffe6a8}.halted{background:#f6b8b8}
 .down{color:#b00;font-weight:bold} button{margin-right:.4em;padding:.35em .8em}
 #error{color:#b00} .muted{color:#777}
</style></head>
<body>
<h1>Tradewind <span id="session" class="muted"></span></h1>
<p>Trading: <span id="state">…</span> <span id="reason" class="muted"></span>
 &nbsp; PnL: <b id="pnl" class="num">…</b> <span id="currency"></span>
 &nbsp; orders <span id="orders-n">…</span>, fills <span id="fills-n">…</span>,
 restarts <span id="restarts">…</span></p>
<p>Feed: <span id="feed">…</span></p>
<p>
 <button id="btn-halt" data-action="halt">Halt</button>
 <button id="btn-resume" data-action="resume">Resume</button>
 <button id="btn-reduce-only" data-action="reduce-only">Reduce only</button>
 <button id="btn-flatten" data-action="flatten">Flatten</button>
 <button id="btn-kill" data-action="kill">Kill</button>
 <span id="action-result" class="muted"></span>
</p>
<p id="error"></p>
<h2>Positions</h2><table id="positions"><thead><tr><th>instrument</th><th>quantity</th>
<th>avg price</th><th>mark</th><th>realized</th></tr></thead><tbody></tbody></table>
<h2>Open orders</h2><table id="orders"><thead><tr><th>id</th><th>strategy</th><th>side</th>
<th>qty</th><th>price</th><th>status</th></tr></thead><tbody></tbody></table>
<h2>Actors</h2><table id="actors"><thead><tr><th>actor</th><th>health</th><th>restarts</th>
</tr></thead><tbody></tbody></table>
<p class="muted">updated <span id="updated">never</span> · refreshes every second</p>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const $ = (id) => document.getElementById(id);
function text(v){ return v === null || v === undefined ? "" : String(v); }
function fmt(v){ return typeof v === "number" ? v.toLocaleString(undefined,
  {maximumFractionDigits: 2}) : text(v); }
async function api(path, method){
  const r = await fetch(path, {method: method || "GET",
    headers: {"Authorization": "Bearer " + token}});
  if (!r.ok) throw new Error(method + " " + path + ": HTTP " + r.status);
  return r.json();
}
function rows(table, items, cells){
  const body = $(table).tBodies[0];
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const [value, cls] of cells(item)) {
      const td = document.createElement("td");
      td.textContent = fmt(value); if (cls) td.className = cls; tr.appendChild(td);
    }
    return tr;
  }));
}
async function refresh(){
  try {
    const [st, pos, ord] = await Promise.all([api("/status"), api("/positions"),
                                              api("/orders?recent=20")]);
    $("session").textContent = st.session_id + " (" + st.mode + ")";
    $("state").textContent = st.trading_state.toUpperCase();
    $("state").className = st.trading_state;
    $("reason").textContent = text(st.state_reason);
    $("pnl").textContent = st.pnl ? fmt(st.pnl.pnl) : "";
    $("orders-n").textContent = text(st.orders); $("fills-n").textContent = text(st.fills);
    $("restarts").textContent = text(st.restarts);
    const f = st.feed;
    $("feed").textContent = f.cursor + " / " + f.total + " events" +
      (f.finished ? " (finished)" : f.running ? " (running)" : "") +
      (f.error ? " error: " + f.error : "");
    $("currency").textContent = pos.currency;
    rows("positions", pos.positions, (p) => [[p.instrument_id], [p.quantity, "num"],
      [p.avg_price, "num"], [p.mark, "num"], [p.realized_pnl, "num"]]);
    rows("orders", ord.open, (o) => [[o.client_order_id], [o.strategy_id], [o.side],
      [o.quantity, "num"], [o.price, "num"], [o.status]]);
    rows("actors", Object.entries(st.actors), ([name, a]) => [[name],
      [a.health, a.health === "up" ? "" : "down"], [a.restarts, "num"]]);
    $("updated").textContent = new Date().toLocaleTimeString();
    $("error").textContent = "";
  } catch (e) { $("error").textContent = String(e.message || e); }
}
for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", async () => {
    const action = button.dataset.action;
    if (!confirm("Really " + action + " this session?")) return;
    try {
      const out = await api("/" + action, "POST");
      $("action-result").textContent = action + ": done (audit " + out.audit_id + ")";
    } catch (e) { $("action-result").textContent = String(e.message || e); }
    refresh();
  });
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""

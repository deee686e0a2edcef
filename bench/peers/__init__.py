"""Peer engines for the foundation benchmark, one module per engine, each runnable on its own:

``python -m bench.peers.<module> --data PATH --kind bars|quotes [--limit N] [--json] [--check]``

- ``backtrader_sma``  backtrader 1.9.78.123 (project venv, ``bench`` extra)
- ``vectorbt_sma``    vectorbt 1.2.0 (project venv, ``bench`` extra); ``sweep``: 100-set grid
- ``nautilus_sma``    nautilus_trader 1.221.0 (own venv bench/.peers/nautilus: pins pandas<3)
- ``agreement``       runs them all, checks their fills, times them (bench/results/)

See bench/README.md for the strategy's exact definition and the measured figures.
"""

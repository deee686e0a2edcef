"""Broker adapters behind the venue port: plain classes (no Ray) the gateway actor wraps.

* :mod:`actors.venues.common` — token buckets, the circuit breaker, live opt-in, credentials and
  the journal-before-send log;
* :mod:`actors.venues.reports` — the order book every adapter feeds: normalised, deduplicated
  execution reports, fills, positions and open orders;
* :mod:`actors.venues.ib` — Interactive Brokers through ``ib_async`` (``ib_insync`` as fallback);
* :mod:`actors.venues.shioaji` — SinoPac Shioaji.

Library types never leave these modules: what comes out are :mod:`runtime.messages` events and
:class:`runtime.venue.VenueOrder` values.
"""

__all__: list[str] = []

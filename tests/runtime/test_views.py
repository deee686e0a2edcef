"""Books and features computed once (``runtime.views``): the book actor's computation and the
backtest kernel's give the same tops and features; a reader of views takes each message's
own view and refuses a message without one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.data import SampleSpec, generate_sample, to_messages
from runtime.errors import InvariantError
from runtime.messages import BookDeltas, BookSnapshot, MarketData, QuoteTick, TradeTick
from runtime.views import FEATURES, InstrumentBook, LocalBooks, ViewedBooks


def _feed(n: int = 3000) -> list[MarketData]:
    tables = generate_sample(np.random.default_rng(3), SampleSpec(instruments=("X",), days=1))
    msgs = [m for kind in ("quotes", "trades", "book") for m in to_messages(kind, tables[kind])]
    msgs.sort(key=lambda m: (m.ts_event, m.seq))
    return msgs[:n]


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def test_the_book_actors_views_equal_what_the_backtest_kernel_computes() -> None:
    msgs = _feed()
    assert {type(m) for m in msgs} >= {QuoteTick, TradeTick, BookDeltas, BookSnapshot}
    book, local = InstrumentBook("X"), LocalBooks()
    local.want("X")
    tops = 0
    for k, msg in enumerate(msgs):
        view = book.apply(k, msg)
        assert view is not None and view.matches(msg)
        if isinstance(msg, QuoteTick):
            local.quote(msg)
        elif isinstance(msg, TradeTick):
            local.trade(msg)
        else:
            assert local.book(msg) == view.top  # type: ignore[arg-type]
            tops += view.top is not None
        assert view.features is not None
        assert _same(dict(zip(FEATURES, view.features, strict=True)), local.features("X"))
    assert tops > 0
    assert book.apply(5, msgs[5]) is None  # a repeat is not applied again


def test_a_reader_takes_each_messages_own_view_and_only_the_features_it_wants() -> None:
    msgs = [m for m in _feed() if isinstance(m, QuoteTick | BookDeltas | BookSnapshot)][:50]
    book = InstrumentBook("X")
    views = [book.apply(k, m) for k, m in enumerate(msgs)]
    reader, wanting = ViewedBooks(), ViewedBooks()
    wanting.want("X")
    quote = next(m for m in msgs if isinstance(m, QuoteTick))
    update = next(m for m in msgs if not isinstance(m, QuoteTick))
    assert reader.needs(update) and not reader.needs(quote) and wanting.needs(quote)
    reader.give([reader.trim(v) for v, m in zip(views, msgs, strict=True)  # type: ignore[arg-type]
                 if reader.needs(m)])
    wanting.give([v for v in views if v is not None])
    for view, msg in zip(views, msgs, strict=True):
        assert view is not None
        if isinstance(msg, QuoteTick):
            reader.quote(msg)
            wanting.quote(msg)
        else:
            assert reader.book(msg) == wanting.book(msg) == view.top
    assert all(math.isnan(v) for v in reader.features("X").values())  # not wanted: trimmed
    last = views[-1]
    assert last is not None and last.features is not None
    assert _same(wanting.features("X"), dict(zip(FEATURES, last.features, strict=True)))


def test_views_of_messages_a_snapshot_covers_are_skipped_and_a_missing_view_is_refused() -> None:
    msgs = [m for m in _feed() if isinstance(m, BookDeltas | BookSnapshot)][:10]
    book = InstrumentBook("X")
    views = [v for k, m in enumerate(msgs) if (v := book.apply(k, m)) is not None]
    reader = ViewedBooks()
    reader.give(views)
    assert reader.book(msgs[4]) == views[4].top  # 0..3 were read before a snapshot
    with pytest.raises(InvariantError, match=r"no book view for BookDeltas X at ts_event"):
        reader.book(msgs[2])  # older than what it read: no view left for it
    reader.give(views[5:])
    with pytest.raises(InvariantError, match="the book stage must run before this reader"):
        reader.book(msgs[4])

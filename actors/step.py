"""The step protocol: what one step of the session carries, and its wire encoding.

Every step of the feed's driver, in lockstep and in real time, runs the same chain whatever
carries it (``actors.carriers``). The step is a :class:`HotInput` (market data, risk's answers
for each strategy, venue reports not delivered yet, the data clock). Every book actor (one per
instrument) takes its part of it (:func:`route`: its instrument's messages with their feed
indices, :class:`BookInput`) and answers their views (:class:`runtime.views.BookView`: top of
book and features, computed there once); every strategy actor takes the input and those views
(:func:`join_views`), runs its reports, messages and timers and answers its intents
(:class:`HotAnswer`); the risk actor takes the reports, the market data (with the views, for
its marks) and those intents in that order, journals them and answers; the gateway applies
the market data to its venue, journals and sends the approved commands, and returns the
reports the venue releases (:class:`HotResult`). Each stage journals what it took
before it answers, so a restarted actor comes back from its journal. A step executed again (a
carrier retries the step when an actor of the chain died, after the actors before it had run
it) gets the reply it got the first time (:class:`Replies`, by the digest of the step's input,
which carries the driver's ``step`` id): executing it a second time would answer without the
intents the first execution produced (a strategy has moved past those messages) or make the
venue release its next reports early. Inputs a restarted feed sends again under new step ids
dedupe as before: market data by feed index, intents by client order id, reports by fill id,
commands by the gateway's send journal.

Lockstep and real time differ only in pacing, i.e. in how much one step carries:

* **real time** (``exact`` false): everything that is due — the market data whose time has
  come, every report not delivered yet; timers due by ``now_ns`` fire; the gateway releases
  the reports due by its venue's clock (``final``: every report still to come, at the end).
  When more is due than the feed's ``conflate_after`` (the chain fell behind), the step says
  which messages are conflated (``dropped``: :func:`conflate`): every book actor still applies
  them (a book needs every delta) but answers no view of them, the strategies and risk pass
  over them (and journal that they did), and the paper venue applies them (it is the market:
  its fill model keeps its own book, and a real venue fills on every price). Trades, bars and
  reports are never dropped.
* **lockstep** (``exact`` true): one event of the backtest loop (``backtest.engine``) at a
  time, so the fills equal the backtest's. A strategy stops at the first report or message it
  acts on (and before a message at which a timer of its own is due) and says how far it got
  (``taken``, ``reports_taken``); risk and the gateway take that much. Then, unless something
  must come first (a denial to answer, reports the driver still holds), the gateway decides
  what comes before the next market message (``after_ts``, None at the end of the data): it
  releases the next reports due before it (or before a due timer), as the backtest's
  ``catch_up`` does, and says whether its venue is idle and quiet. The driver delivers those
  reports, fires the due timer, or sends the next message (several while the venue is quiet
  and one strategy runs).

What crosses a carrier is msgpack bytes (msgspec), not pickled message objects (a pickled order
costs ~30 us each way with Ray's serializer, its msgpack ~1 us).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from runtime.journal import Blob
from runtime.messages import AnyMessage, BookDeltas, BookSnapshot, Message, QuoteTick
from runtime.views import BookView

__all__ = ["BOOK_PING", "NO_VIEWS", "PING", "REPLY", "BookInput", "HotAnswer", "HotInput",
           "HotResult", "Replies", "conflate", "decode_answer", "decode_book", "decode_input",
           "decode_messages", "decode_result", "decode_views", "encode", "encode_result",
           "encode_views", "join_views", "route", "taken", "views_of"]


class HotInput(msgspec.Struct, array_like=True, frozen=True):
    """One step (see the module docstring)."""

    index: int  # feed index of msgs[0] (the next index when msgs is empty); -1: a no-op
    msgs: list[AnyMessage]  # market data in feed order
    now_ns: int  # the data clock: timers due by then fire
    answers: dict[str, list[AnyMessage]]  # risk's earlier answers, per strategy
    reports: list[AnyMessage]  # venue reports the strategies and risk have not seen
    reports_seen: int  # how many reports the driver has taken from the gateway
    exact: bool = False  # lockstep: one event at a time (see the module docstring)
    idle_until: int | None = None  # a timer step's: the venue is idle until then
    after_ts: int | None = None  # exact: the time of the message after msgs; None: the end
    queued: int = 0  # exact: reports the driver holds beyond these
    final: bool = False  # real time: the end; the gateway releases every report to come
    step: int = 0  # the driver's id of this step (unique per step sent, retries keep it)
    #: real time, the chain behind: positions in msgs (ascending) the feed conflated — quotes
    #: and book updates a later one of the same kind and instrument in msgs supersedes; the
    #: book actors apply them, the strategies and risk pass over them (``conflate``)
    dropped: list[int] = msgspec.field(default_factory=list)


class BookInput(msgspec.Struct, array_like=True, frozen=True):
    """A book actor's part of a step (:func:`route`): its instrument's messages and their
    feed indices, and the step's extent (the views it answers are those of the step)."""

    index: int  # the step's feed index (HotInput.index); -1: a no-op
    count: int  # the step's messages: feed indices index .. index + count - 1
    at: list[int]  # the feed index of each of msgs, ascending
    msgs: list[AnyMessage]  # this instrument's messages of the step, in feed order
    #: feed indices (among ``at``) the feed conflated: applied to the book, no view answered
    dropped: list[int] = msgspec.field(default_factory=list)


class HotAnswer(msgspec.Struct, array_like=True, frozen=True):
    """A strategy actor's answer: its intents, its next timer (ns) or None, and (exact) how
    many of the step's messages and reports it took."""

    intents: list[AnyMessage]
    timer: int | None
    taken: int = 0
    reports_taken: int = 0


_ENCODER = msgspec.msgpack.Encoder()
_INPUT = msgspec.msgpack.Decoder(HotInput)
_MESSAGES = msgspec.msgpack.Decoder(list[AnyMessage])
_ANSWER = msgspec.msgpack.Decoder(HotAnswer)
_BOOK = msgspec.msgpack.Decoder(BookInput)
_RESULT = msgspec.msgpack.Decoder(tuple[list[bytes], bytes, bytes, int, bool, bool, bool])


def encode_result(answers: Sequence[bytes], out: bytes, reports: bytes, offset: int, *,
                  decided: bool = False, idle: bool = False, quiet: bool = False) -> bytes:
    """The step's one output (the gateway's): the strategies' answers and risk's outputs as
    they came, the reports from ``offset`` on, each still encoded, and (exact) the gateway's
    decision: made or not, its venue idle, quiet."""
    return _ENCODER.encode((list(answers), out, reports, offset, decided, idle, quiet))


def encode(value: HotInput | HotAnswer | Sequence[Message]) -> bytes:
    return _ENCODER.encode(value)


def decode_input(data: bytes) -> HotInput:
    return _INPUT.decode(data)


def decode_book(data: bytes) -> BookInput:
    return _BOOK.decode(data)


def route(inp: HotInput, instruments: Sequence[str]) -> list[bytes]:
    """Each book actor's part of the step (:class:`BookInput`), in the order of
    ``instruments``: a book decodes and walks its own instrument's messages only, however
    many instruments the step carries. A message of an instrument without a book goes to
    none."""
    if inp.index < 0:
        return [BOOK_PING] * len(instruments)
    index = inp.index
    parts: dict[str, tuple[list[int], list[Any]]] = {i: ([], []) for i in instruments}
    for k, msg in enumerate(inp.msgs):
        part = parts.get(msg.instrument_id)  # type: ignore[union-attr]
        if part is not None:
            part[0].append(index + k)
            part[1].append(msg)
    gone = {index + k for k in inp.dropped}
    count = len(inp.msgs)
    return [_ENCODER.encode(BookInput(index, count, at, msgs,
                                      [i for i in at if i in gone] if gone else []))
            for at, msgs in parts.values()]


def decode_messages(data: bytes) -> list[Any]:
    return _MESSAGES.decode(data)


def decode_answer(data: bytes) -> HotAnswer:
    return _ANSWER.decode(data)


_VIEWS = msgspec.msgpack.Decoder(list[BookView])
_JOINED = msgspec.msgpack.Decoder(list[bytes])


def encode_views(views: Sequence[BookView]) -> bytes:
    """A book actor's answer: its views, in feed order."""
    return _ENCODER.encode(views)


def decode_views(data: bytes) -> list[BookView]:
    return _VIEWS.decode(data)


def join_views(answers: Sequence[bytes]) -> bytes:
    """The book actors' answers of a step as one argument for the strategies and risk (each
    left encoded: the carrier never decodes them)."""
    return _ENCODER.encode(list(answers))


def views_of(joined: bytes) -> list[BookView]:
    """Every view of a step (:func:`join_views`), in feed order."""
    parts = [decode_views(a) for a in _JOINED.decode(joined)]
    if len(parts) == 1:
        return parts[0]
    return sorted((v for part in parts for v in part), key=lambda v: v.index)


NO_VIEWS = join_views([])


PING = encode(HotInput(-1, [], 0, {}, [], 0))  # a no-op step: a carrier's warm-up
BOOK_PING = _ENCODER.encode(BookInput(-1, 0, [], []))  # a book actor's part of it

REPLY: Final = "step.reply"  # journal record: a step's digest and the reply it got


class Replies:
    """The reply an actor gave to the latest step, by the digest of the step's input (see
    the module docstring): :meth:`get` it back when the same step comes again. An actor
    journals :meth:`keep`'s record when the step had effects (intents, outputs, a venue's
    decision), in the same commit as the step's inputs, and reads it back with :meth:`load`
    on restore, so a crash of the actor itself between its commit and its reply answers the
    retry the same way."""

    __slots__ = ("key", "reply")

    def __init__(self) -> None:
        self.key = b""
        self.reply = b""

    @staticmethod
    def digest(*parts: bytes) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for part in parts:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h.digest()

    def get(self, key: bytes) -> bytes | None:
        return self.reply if key == self.key else None

    def keep(self, key: bytes, reply: bytes) -> Blob:
        """Remember ``reply`` for ``key``; the journal record that restores it."""
        self.key, self.reply = key, reply
        return Blob(REPLY, key + reply)

    def load(self, payload: bytes) -> None:
        """A journaled :meth:`keep` record (or a snapshot's copy) back."""
        self.key, self.reply = payload[:16], payload[16:]

    def state(self) -> bytes:
        return self.key + self.reply


class HotResult(msgspec.Struct, frozen=True):
    """What one step gave back: each strategy's answer, risk's outputs, the reports the
    gateway holds from ``offset`` on (the input's ``reports_seen``) and, in lockstep, whether
    the gateway decided what comes next, and whether its venue is idle and quiet."""

    answers: list[HotAnswer]
    out: list[Any]
    reports: list[Any]
    offset: int
    decided: bool = False
    idle: bool = False
    quiet: bool = False


def decode_result(raw: bytes) -> HotResult:
    """The gateway's output of a step (:func:`encode_result`), decoded."""
    answers, out, reports, offset, decided, idle, quiet = _RESULT.decode(raw)
    return HotResult([decode_answer(a) for a in answers], decode_messages(out),
                     decode_messages(reports), offset, decided, idle, quiet)


def conflate(msgs: Sequence[Message]) -> list[int]:
    """The positions in ``msgs`` a later message supersedes for a reader of the latest book:
    a quote followed by another quote of its instrument, a book update (deltas or snapshot)
    followed by another book update of its instrument (whose view is the whole book after
    it). Trades and bars are never among them; the last message of each kind and instrument
    always stays."""
    seen: set[tuple[bool, str]] = set()
    out: list[int] = []
    for k in range(len(msgs) - 1, -1, -1):
        msg = msgs[k]
        kind = type(msg)
        if kind is QuoteTick:
            key = (True, msg.instrument_id)  # type: ignore[attr-defined]
        elif kind is BookDeltas or kind is BookSnapshot:
            key = (False, msg.instrument_id)  # type: ignore[attr-defined]
        else:
            continue
        if key in seen:
            out.append(k)
        else:
            seen.add(key)
    out.reverse()
    return out


def taken(inp: HotInput, answers: Sequence[HotAnswer]) -> tuple[int, int]:
    """How many of the step's messages and reports every strategy took (all of them in real
    time): what risk and the gateway take."""
    if not inp.exact or not answers:
        return len(inp.msgs), len(inp.reports)
    return min(a.taken for a in answers), min(a.reports_taken for a in answers)

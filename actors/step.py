"""The step protocol: what one step of the session carries, and its wire encoding.

Each step of the feed's driver in real time runs the same chain whatever carries it
(``actors.carriers``): every strategy actor takes a :class:`HotInput` (the market data whose
time has come, risk's answers for each strategy, the venue reports not delivered yet, the data
clock), runs its messages and timers and answers its intents (:class:`HotAnswer`); the risk
actor takes the reports, the market data and those intents in that order, journals them and
answers; the gateway applies the market data to its venue, journals and sends the approved
commands, and returns the reports that are due (:class:`HotResult`). Each stage journals what
it took before it answers, so a restarted actor comes back from its journal and an input
executed twice (after a crash) changes nothing: market data dedupes by feed index, intents by
client order id, reports by fill id, commands by the gateway's send journal.

What crosses a carrier is msgpack bytes (msgspec), not pickled message objects (a pickled order
costs ~30 us each way with Ray's serializer, its msgpack ~1 us).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from runtime.messages import AnyMessage, Message

__all__ = ["PING", "HotAnswer", "HotInput", "HotResult", "decode_answer",
           "decode_input", "decode_messages", "decode_result", "encode", "encode_result"]


class HotInput(msgspec.Struct, array_like=True, frozen=True):
    """One step (see the module docstring)."""

    index: int  # feed index of msgs[0] (the next index when msgs is empty); -1: a no-op
    msgs: list[AnyMessage]  # market data in feed order
    now_ns: int  # the data clock: timers due by then fire
    answers: dict[str, list[AnyMessage]]  # risk's earlier answers, per strategy
    reports: list[AnyMessage]  # venue reports the strategies and risk have not seen
    reports_seen: int  # how many reports the driver has taken from the gateway


class HotAnswer(msgspec.Struct, array_like=True, frozen=True):
    """A strategy actor's answer: its intents and its next timer (ns), or None."""

    intents: list[AnyMessage]
    timer: int | None


_ENCODER = msgspec.msgpack.Encoder()
_INPUT = msgspec.msgpack.Decoder(HotInput)
_MESSAGES = msgspec.msgpack.Decoder(list[AnyMessage])
_ANSWER = msgspec.msgpack.Decoder(HotAnswer)
_RESULT = msgspec.msgpack.Decoder(tuple[list[bytes], bytes, bytes, int])


def encode_result(answers: Sequence[bytes], out: bytes, reports: bytes, offset: int) -> bytes:
    """The step's one output (the gateway's): the strategies' answers and risk's outputs as
    they came, and the reports from ``offset`` on, each still encoded."""
    return _ENCODER.encode((list(answers), out, reports, offset))


def encode(value: HotInput | HotAnswer | Sequence[Message]) -> bytes:
    return _ENCODER.encode(value)


def decode_input(data: bytes) -> HotInput:
    return _INPUT.decode(data)


def decode_messages(data: bytes) -> list[Any]:
    return _MESSAGES.decode(data)


def decode_answer(data: bytes) -> HotAnswer:
    return _ANSWER.decode(data)


PING = encode(HotInput(-1, [], 0, {}, [], 0))  # a no-op step: a carrier's warm-up


class HotResult(msgspec.Struct, frozen=True):
    """What one step gave back: each strategy's answer, risk's outputs, and the reports the
    gateway holds from ``offset`` on (the input's ``reports_seen``)."""

    answers: list[HotAnswer]
    out: list[Any]
    reports: list[Any]
    offset: int


def decode_result(raw: bytes) -> HotResult:
    """The gateway's output of a step (:func:`encode_result`), decoded."""
    answers, out, reports, offset = _RESULT.decode(raw)
    return HotResult([decode_answer(a) for a in answers], decode_messages(out),
                     decode_messages(reports), offset)

"""The paper config's ``supervisor`` tree (no Ray): the default nests a trading and a
market-data subtree; a flat tree still loads; a subtree's policy defaults to its parent's;
mistakes in the tree are refused at load time, naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from actors.config import KINDS, ChildConfig, SupervisorConfig
from runtime.supervision import ChildSpec


def _expand(kind: str, entry: ChildConfig) -> list[ChildSpec]:
    ids = {"strategy": ["strategy:a", "strategy:b"], "store": [], "recorder": []}
    return [ChildSpec(child_id=c, restart=entry.restart, factory="m:C")
            for c in ids.get(kind, [kind])]


def test_the_default_tree_nests_trading_and_market_data() -> None:
    spec = SupervisorConfig(intensity=7).spec(_expand)
    trading, market = spec.children
    assert trading.supervisor is not None and market.supervisor is not None
    assert trading.supervisor.child_ids() == ("risk", "gateway", "strategy:a", "strategy:b",
                                              "reconciler")
    assert market.supervisor.child_ids() == ("book", "feed")  # no store, no recorder
    assert trading.supervisor.intensity == 7  # the parent's, left out in the subtree
    assert market.supervisor.children[-1].restart == "transient"


def test_a_flat_tree_and_a_subtree_policy_of_its_own() -> None:
    flat = SupervisorConfig(children=[{"child_id": k} for k in KINDS]).spec(_expand)
    assert flat.tree_ids() == ("risk", "gateway", "strategy:a", "strategy:b", "book",
                              "reconciler", "feed")
    sub = {"child_id": "all", "supervisor": {"intensity": 1, "strategy": "one_for_all",
                                             "children": [{"child_id": k} for k in KINDS]}}
    (child,) = SupervisorConfig(children=[sub]).spec(_expand).children
    assert child.supervisor is not None
    assert (child.supervisor.intensity, child.supervisor.strategy) == (1, "one_for_all")


@pytest.mark.parametrize(("children", "message"), [
    ([{"child_id": k} for k in KINDS if k != "risk"], "missing ['risk']"),
    ([{"child_id": k} for k in (*KINDS, "risk")], "repeated ['risk']"),
    ([{"child_id": "feed"}, *({"child_id": k} for k in KINDS[:-1])], "the feed starts last"),
    ([{"child_id": "risky"}], "unknown child 'risky'"),
    ([*({"child_id": k} for k in KINDS[:-1]), {"child_id": "feed", "restart": "temporary"}],
     "the feed cannot be temporary"),
    ([{"child_id": "risk", "supervisor": {"children": [{"child_id": k} for k in KINDS]}}],
     "ids of their own"),
])
def test_mistakes_in_the_tree_are_refused(children: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SupervisorConfig(children=children)

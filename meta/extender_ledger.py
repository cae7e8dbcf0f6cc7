"""Free VFs per node (as the node watch shows them) and VFs promised to pods the extender's filter
passed ("assumed"), so that pods scheduled one after another before any node count changes are
never promised more VFs on a node than it has free.

Rules (one lock; every method is thread-safe):
- A filter that passes nodes for a pod (keyed by its UID) claims the pod's need on EACH passed
  node, tentatively: the scheduler picks one of them afterwards and does not tell the extender.
  A repeated filter for the same UID replaces the pod's claim (never counted twice); a filter
  that passes no node drops it.
- The pod watch shows the node the pod was bound to (`bind`): the claim stays on that node only.
  A pod deleted (or gone from the pending pods) before it was bound gives its claim back.
- When a node's published free count drops by d (observed through the node watch), d VFs of the
  claims on that node are taken as consumed: bound claims first, then tentative ones, oldest
  first; a claim leaves a node once all its VFs there are consumed. Per PF likewise when the node
  publishes the per-PF detail and the claim counted that PF.
- A claim expires `ttl` seconds after the filter that made it, whatever else happened.
- Free on a node for a pod = published free - VFs that OTHER pods' claims hold there, for the
  node total and for each PF the pod names (when the node publishes the per-PF detail).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from .extender_need import Need
from .extender_nodes import Free, parse_free

TOTAL = ""        # the pool of the node total; the other pools are PF names
FIT, FAILED, UNRESOLVABLE = "fit", "failed", "unresolvable"


@dataclass
class Claim:
    need: Need
    expires: float
    bound: str | None = None
    nodes: dict = field(default_factory=dict)     # node -> {pool: VFs not yet seen consumed}


class Verdict(NamedTuple):
    status: str            # FIT, FAILED, UNRESOLVABLE
    code: str = ""         # why not (a metric label): unknown_node, not_published, no_pf, capacity, insufficient
    reason: str = ""       # the message for failedNodes
    free_after: int = 0    # with FIT: free VFs left on the node after this pod (tightest pool)


class Ledger:
    def __init__(self, ttl: float, clock=time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._lock = threading.Lock()
        self._free: dict[str, Free] = {}
        self._claims: OrderedDict[str, Claim] = OrderedDict()     # in expiry order
        self._on_node: dict[str, dict[str, dict]] = {}            # node -> {uid: remaining}, oldest first
        self._held: dict[str, dict[str, int]] = {}                # node -> {pool: sum of remaining}

    # -- the node and pod watches ------------------------------------------------------------

    def observe_node(self, name: str, node) -> None:
        """A node as the watch shows it now (None: deleted)."""
        new = parse_free(node) if node is not None else None
        with self._lock:
            old = self._free.pop(name, None)
            if new is None:
                for uid in list(self._on_node.get(name, ())):
                    self._drop_entry(name, uid)
                return
            self._free[name] = new
            if old is None:
                return
            if old.total is not None and new.total is not None and new.total < old.total:
                self._absorb(name, TOTAL, old.total - new.total)
            if old.pfs and new.pfs:
                for pf, (free, _) in new.pfs.items():
                    if pf in old.pfs and free < old.pfs[pf][0]:
                        self._absorb(name, pf, old.pfs[pf][0] - free)

    def bind(self, uid: str, node: str) -> None:
        """The pod was bound to `node`: keep its claim there only."""
        with self._lock:
            claim = self._claims.get(uid)
            if claim is None or claim.bound == node:
                return
            claim.bound = node
            for other in [n for n in claim.nodes if n != node]:
                self._drop_entry(other, uid)

    def pod_gone(self, uid: str) -> None:
        """The pod left the pending pods: an unbound claim is given back (a bound one waits for
        the node count or the TTL)."""
        with self._lock:
            claim = self._claims.get(uid)
            if claim is not None and claim.bound is None:
                self._drop_claim(uid)

    def forget(self, uid: str) -> None:
        """Drop the pod's claim (the filter found it cannot run anywhere)."""
        with self._lock:
            self._drop_claim(uid)

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, uid: str, need: Need, names, fallback=None, assume: bool = False) -> dict:
        """{node: Verdict} for a pod needing `need` on each of `names`; `fallback(node) -> Free |
        None` stands in for nodes the watch does not know (the Node objects of the request). With
        `assume`, the nodes that fit become the pod's claim (replacing any earlier one),
        atomically with the decision."""
        with self._lock:
            self._expire()
            out = {}
            for name in names:
                free = self._free.get(name)
                if free is None and fallback is not None:
                    free = fallback(name)
                out[name] = self._fit(name, free, uid, need)
            if assume:
                self._drop_claim(uid)
                fit = [n for n, v in out.items() if v.status == FIT]
                if fit and need:
                    self._add_claim(uid, need, fit)
            return out

    def _fit(self, name: str, f: Free | None, uid: str, need: Need) -> Verdict:
        if f is None:
            return Verdict(FAILED, "unknown_node", f"node {name} is unknown to the extender (not in its node cache)")
        if f.total is None:
            return Verdict(UNRESOLVABLE, "not_published", f.problem)
        if f.capacity is not None and f.capacity < need.total:
            return Verdict(UNRESOLVABLE, "capacity", f"node has {f.capacity} SR-IOV VF(s) in all, "
                                                     f"the pod needs {need.total}")
        pfs = f.pfs if need.pfs else None
        for pf, n in need.pfs if pfs is not None else ():
            if pf not in pfs:
                return Verdict(UNRESOLVABLE, "no_pf", f"node has no SR-IOV PF {pf} (the pod needs {n} VF(s) on it)")
            if pfs[pf][1] < n:
                return Verdict(UNRESOLVABLE, "capacity", f"PF {pf} has {pfs[pf][1]} VF(s) in all, the pod needs {n}")
        held = self._held.get(name)
        if held:      # VFs promised to other pods (not to this one: a repeated filter)
            own = self._on_node[name].get(uid)
            promised = {pool: v - own.get(pool, 0) for pool, v in held.items()} if own else held
        else:
            promised = held = {}
        after = f.total - promised.get(TOTAL, 0) - need.total
        if after < 0:
            return Verdict(FAILED, "insufficient", f"not enough free SR-IOV VFs: {f.total} free, "
                                                   f"{promised.get(TOTAL, 0)} promised to pods being scheduled, "
                                                   f"the pod needs {need.total}")
        for pf, n in need.pfs if pfs is not None else ():
            left = pfs[pf][0] - promised.get(pf, 0) - n
            if left < 0:
                return Verdict(FAILED, "insufficient", f"not enough free VFs on PF {pf}: {pfs[pf][0]} free, "
                                                       f"{promised.get(pf, 0)} promised to pods being scheduled, "
                                                       f"the pod needs {n}")
            after = min(after, left)
        return Verdict(FIT, "", "", after)

    # -- introspection (metrics, tests) ------------------------------------------------------

    def assumed(self) -> dict:
        """VFs held by claims on nodes, by state: {"tentative": n, "bound": n, "pods": claims}."""
        with self._lock:
            self._expire()
            out = {"tentative": 0, "bound": 0, "pods": len(self._claims)}
            for claim in self._claims.values():
                for rem in claim.nodes.values():
                    out["bound" if claim.bound else "tentative"] += rem.get(TOTAL, 0)
            return out

    def held(self, node: str) -> dict:
        """{pool: VFs promised on `node`} ("" = the node total)."""
        with self._lock:
            self._expire()
            return {k: v for k, v in (self._held.get(node) or {}).items() if v}

    # -- internals (lock held) ---------------------------------------------------------------

    def _add_claim(self, uid: str, need: Need, nodes) -> None:
        claim = Claim(need, self.clock() + self.ttl)
        self._claims[uid] = claim
        for node in nodes:
            rem = {TOTAL: need.total}
            f = self._free.get(node)
            if f is not None and f.pfs is not None:
                rem.update(need.pfs)
            claim.nodes[node] = rem
            self._on_node.setdefault(node, {})[uid] = rem
            held = self._held.setdefault(node, {})
            for pool, n in rem.items():
                held[pool] = held.get(pool, 0) + n

    def _drop_entry(self, node: str, uid: str) -> None:
        entries = self._on_node.get(node) or {}
        rem = entries.pop(uid, None)
        if rem is None:
            return
        held = self._held.get(node) or {}
        for pool, n in rem.items():
            held[pool] = held.get(pool, 0) - n
        if not entries:
            self._on_node.pop(node, None)
            self._held.pop(node, None)
        claim = self._claims.get(uid)
        if claim is not None:
            claim.nodes.pop(node, None)
            if not claim.nodes:
                del self._claims[uid]

    def _drop_claim(self, uid: str) -> None:
        claim = self._claims.get(uid)
        if claim is not None:
            for node in list(claim.nodes):
                self._drop_entry(node, uid)
            self._claims.pop(uid, None)

    def _absorb(self, node: str, pool: str, d: int) -> None:
        entries = self._on_node.get(node) or {}
        held = self._held.get(node) or {}
        for bound in (True, False):
            for uid, rem in list(entries.items()):
                if d <= 0:
                    return
                if (self._claims[uid].bound == node) != bound or not rem.get(pool):
                    continue
                take = min(d, rem[pool])
                rem[pool] -= take
                held[pool] -= take
                d -= take
                if not any(rem.values()):
                    self._drop_entry(node, uid)

    def _expire(self) -> None:
        now = self.clock()
        while self._claims:
            uid, claim = next(iter(self._claims.items()))
            if claim.expires > now:
                return
            self._drop_claim(uid)

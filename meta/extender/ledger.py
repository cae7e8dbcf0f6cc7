"""Free VFs per node (as the node watch shows them) and VFs held for pods the extender placed
but the node has not yet published as used, so that no node is ever promised more VFs than it
has free — and, with the `bind` verb, so that a round of scheduling admits as many pods as there
are free VFs.

Two modes (one lock; every method is thread-safe):

bind mode (the extender is kube-scheduler's binder, `bindVerb`): a filter promises nothing; it
passes every node whose published free VFs minus the VFs HELD there for other pods cover the pod.
`charge()` (the bind verb) is the one place a VF is promised: atomically with the check, the
pod's need is held on the ONE node it is bound to. A second bind that no longer fits is refused
(kube-scheduler then retries the pod), so a node is never over-committed and never under-used.

filter mode (no `bindVerb`; for schedulers that cannot delegate binding): the scheduler picks one
of the passed nodes and does not say which, so a filter holds the pod's need TENTATIVELY on each
node it passed until the pod watch shows the binding (then on that node only) or `ttl` passes.
Before binds are seen, a round admits only as many pods as the largest free count of one node.

How a hold ends — by pod identity, never by the order of events or by age:
- Nodes name the pods holding their VFs (`pods` per PF in sriov/vfDetail; meta/daemon/availability.py).
  A node update that names a pod ends that pod's hold: the published count now includes it.
  Whether the count or the binding arrives first does not matter, nor do other pods' VFs.
- A pod deleted (or gone before it was bound) ends its hold.
- A pod that left Pending (it runs) but that its node does not name after `settle` seconds ends
  its hold (its network never took a VF: a delegate without K8S_POD_UID, or a failed attach).
- A pod bound by someone else (spec.nodeName preset, another scheduler, an extender restart) is
  held when the pod watch first shows it bound, unless its node already names it.
- Nodes that do not name their holders (an older node daemon) fall back to the count: a drop of
  d free VFs ends d held VFs there, bound holds first, then tentative ones, oldest first; their
  holds also end after `ttl`. This is the only place order and age matter.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from .need import Need
from .nodes import Free, digest, parse_free

TOTAL = ""        # the pool of the node total; the other pools are PF names
FIT, FAILED, UNRESOLVABLE = "fit", "failed", "unresolvable"
SETTLE = 60.0     # a running pod its node does not name is let go after this long


@dataclass
class Claim:
    need: Need
    key: bytes                                    # the pod UID's digest (extender_nodes.digest)
    bound: str | None = None
    nodes: dict = field(default_factory=dict)     # node -> {pool: VFs held}


class Verdict(NamedTuple):
    status: str            # FIT, FAILED, UNRESOLVABLE
    code: str = ""         # why not (a metric label): unknown_node, not_published, no_pf, capacity, insufficient
    reason: str = ""       # the message for failedNodes
    free_after: int = 0    # with FIT: free VFs left on the node after this pod (tightest pool)


class Ledger:
    def __init__(self, ttl: float, clock=time.monotonic, settle: float = SETTLE):
        self.ttl, self.clock, self.settle = ttl, clock, settle
        self._lock = threading.Lock()
        self._free: dict[str, Free] = {}
        self._claims: dict[str, Claim] = {}
        self._expiring: OrderedDict[str, float] = OrderedDict()   # uid -> deadline (age-bound holds)
        self._running: OrderedDict[str, float] = OrderedDict()    # uid -> deadline (settle)
        self._on_node: dict[str, dict[str, dict]] = {}            # node -> {uid: held}, oldest first
        self._held: dict[str, dict[str, int]] = {}                # node -> {pool: sum of held}

    # -- the node and pod watches ------------------------------------------------------------

    def observe_node(self, name: str, node) -> None:
        """A node as the watch shows it now: a Free (meta/extender/nodes.py), a Node object, or
        None (deleted)."""
        new = parse_free(node) if isinstance(node, dict) else node
        with self._lock:
            old = self._free.pop(name, None)
            if new is None:
                for uid in list(self._on_node.get(name, ())):
                    self._drop_entry(name, uid)
                return
            self._free[name] = new
            if new.holders is not None:
                for uid in list(self._on_node.get(name, ())):
                    claim = self._claims[uid]
                    if new.holds(claim.key):
                        self._drop_claim(uid)       # placed here and counted: done everywhere
                    elif claim.bound == name:
                        self._expiring.pop(uid, None)   # identity ends it, not age
                return
            if old is None:
                return
            if old.total is not None and new.total is not None and new.total < old.total:
                self._absorb(name, TOTAL, old.total - new.total)
            if old.pfs and new.pfs:
                for pf, (free, _) in new.pfs.items():
                    if pf in old.pfs and free < old.pfs[pf][0]:
                        self._absorb(name, pf, old.pfs[pf][0] - free)

    def bind(self, uid: str, node: str, need_fn=None) -> None:
        """The pod watch shows the pod bound to `node`: keep its hold there only. A pod the
        extender holds nothing for (bound by someone else) is held with `need_fn()` (called
        without the lock: it may read NADs), unless its node already names it."""
        with self._lock:
            if self._bind(uid, node) or need_fn is None:
                return
        need = need_fn()
        if not need:
            return
        with self._lock:
            free = self._free.get(node)
            if uid in self._claims or (free is not None and free.holds(digest(uid))):
                return
            self._add_claim(uid, need, [node], bound=node)

    def _bind(self, uid: str, node: str) -> bool:
        claim = self._claims.get(uid)
        if claim is None:
            return False
        if claim.bound != node:
            claim.bound = node
            for other in [n for n in claim.nodes if n != node]:
                self._drop_entry(other, uid)
        free = self._free.get(node)
        if free is not None and free.holders is not None and free.holds(claim.key):
            self._drop_claim(uid)         # the count arrived before the binding
            return True
        if uid not in self._claims:       # it held nothing on that node: hold there afresh
            return False
        if free is not None and free.holders is not None:
            self._expiring.pop(uid, None)
        return True

    def pod_gone(self, uid: str, deleted: bool = True) -> None:
        """The pod left the pending pods: deleted (or never bound) ends its hold; one that runs
        keeps it until its node names it, or `settle` seconds."""
        with self._lock:
            claim = self._claims.get(uid)
            if claim is None:
                return
            if deleted or claim.bound is None:
                self._drop_claim(uid)
            elif uid not in self._running:
                self._running[uid] = self.clock() + self.settle

    def forget(self, uid: str) -> None:
        """Drop the pod's hold (the filter found it cannot run anywhere; a bind failed)."""
        with self._lock:
            self._drop_claim(uid)

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, uid: str, need: Need, names, fallback=None, assume: bool = False) -> dict:
        """{node: Verdict} for a pod needing `need` on each of `names`; `fallback(node) -> Free |
        None` stands in for nodes the watch does not know (the Node objects of the request). With
        `assume` (filter mode), the nodes that fit become the pod's tentative hold (replacing any
        earlier one), atomically with the decision. Without it the lock is held only to copy the
        holds (O(nodes with holds)), not while the candidates are judged."""
        if assume:
            with self._lock:
                self._expire()
                out = {n: self._fit(n, self._node(n, fallback), uid, need, self._held, self._on_node)
                       for n in names}
                self._drop_claim(uid)
                fit = [n for n, v in out.items() if v.status == FIT]
                if fit and need:
                    self._add_claim(uid, need, fit)
                return out
        with self._lock:
            self._expire()
            held = {n: dict(h) for n, h in self._held.items()}
            own = {n: dict(e[uid]) for n, e in self._on_node.items() if uid in e}
        return {n: self._fit(n, self._node(n, fallback), uid, need, held, own, own_only=True) for n in names}

    def charge(self, uid: str, need: Need, node: str, fallback=None) -> Verdict:
        """Bind mode: hold the pod's need on `node` if it still fits there (atomically); a pod
        already held there stays held (a retried bind)."""
        with self._lock:
            self._expire()
            claim = self._claims.get(uid)
            if claim is not None and claim.bound == node:
                return Verdict(FIT)
            self._drop_claim(uid)
            v = self._fit(node, self._node(node, fallback), uid, need, self._held, self._on_node)
            if v.status == FIT and need:
                self._add_claim(uid, need, [node], bound=node)
            return v

    def _node(self, name: str, fallback) -> Free | None:
        free = self._free.get(name)
        return fallback(name) if free is None and fallback is not None else free

    def _fit(self, name: str, f: Free | None, uid: str, need: Need, held_by_node: dict, entries: dict,
             own_only: bool = False) -> Verdict:
        if f is None:
            return Verdict(FAILED, "unknown_node", f"node {name} is unknown to the extender (not in its node cache)")
        if f.total is None:
            return Verdict(UNRESOLVABLE, "not_published", f.problem)
        if f.capacity is not None and f.capacity < need.total:
            return Verdict(UNRESOLVABLE, "capacity", f"node has {f.capacity} SR-IOV VF(s) in all, "
                                                     f"the pod needs {need.total}")
        pfs = f.pfs if need.pfs else None
        if pfs is not None:     # the pod names PFs and the node publishes its detail
            for pf, n in need.pfs:
                if pf not in pfs:
                    return Verdict(UNRESOLVABLE, "no_pf", f"node has no SR-IOV PF {pf} (the pod needs {n} VF(s) on it)")
                if pfs[pf][1] < n:
                    return Verdict(UNRESOLVABLE, "capacity", f"PF {pf} has {pfs[pf][1]} VF(s) in all, the pod needs {n}")
        held = held_by_node.get(name)
        if held:      # VFs held for OTHER pods (not this one: a repeated filter)
            own = entries.get(name) if own_only else (entries.get(name) or {}).get(uid)
            promised = {pool: v - own.get(pool, 0) for pool, v in held.items()} if own else held
        else:
            promised = {}
        after = f.total - promised.get(TOTAL, 0) - need.total
        if after < 0:
            return Verdict(FAILED, "insufficient", f"not enough free SR-IOV VFs: {f.total} free, "
                                                   f"{promised.get(TOTAL, 0)} promised to pods being scheduled, "
                                                   f"the pod needs {need.total}")
        if pfs is not None:
            for pf, n in need.pfs:
                left = pfs[pf][0] - promised.get(pf, 0) - n
                if left < 0:
                    return Verdict(FAILED, "insufficient", f"not enough free VFs on PF {pf}: {pfs[pf][0]} free, "
                                                           f"{promised.get(pf, 0)} promised to pods being scheduled, "
                                                           f"the pod needs {n}")
                after = min(after, left)
        return Verdict(FIT, "", "", after)

    # -- introspection (metrics, tests) ------------------------------------------------------

    def assumed(self) -> dict:
        """VFs held on nodes, by state: {"tentative": n, "bound": n, "pods": holds}."""
        with self._lock:
            self._expire()
            out = {"tentative": 0, "bound": 0, "pods": len(self._claims)}
            for claim in self._claims.values():
                for rem in claim.nodes.values():
                    out["bound" if claim.bound else "tentative"] += rem.get(TOTAL, 0)
            return out

    def held(self, node: str) -> dict:
        """{pool: VFs held on `node`} ("" = the node total)."""
        with self._lock:
            self._expire()
            return {k: v for k, v in (self._held.get(node) or {}).items() if v}

    # -- internals (lock held) ---------------------------------------------------------------

    def _add_claim(self, uid: str, need: Need, nodes, bound: str | None = None) -> None:
        claim = Claim(need, digest(uid), bound)
        self._claims[uid] = claim
        ages = bound is None
        for node in nodes:
            rem = {TOTAL: need.total}
            f = self._free.get(node)
            if f is not None and f.pfs is not None:
                rem.update(need.pfs)
            ages = ages or f is None or f.holders is None
            claim.nodes[node] = rem
            self._on_node.setdefault(node, {})[uid] = rem
            held = self._held.setdefault(node, {})
            for pool, n in rem.items():
                held[pool] = held.get(pool, 0) + n
        if ages:
            self._expiring[uid] = self.clock() + self.ttl

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
                self._forget(uid)

    def _drop_claim(self, uid: str) -> None:
        claim = self._claims.get(uid)
        if claim is not None:
            for node in list(claim.nodes):
                self._drop_entry(node, uid)
            self._forget(uid)

    def _forget(self, uid: str) -> None:
        self._claims.pop(uid, None)
        self._expiring.pop(uid, None)
        self._running.pop(uid, None)

    def _absorb(self, node: str, pool: str, d: int) -> None:
        """Legacy nodes (no holders named): a count drop ends that many held VFs."""
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
        for table in (self._expiring, self._running):
            while table:
                uid, deadline = next(iter(table.items()))
                if deadline > now:
                    break
                table.pop(uid)
                self._drop_claim(uid)

"""Garbage collection of one network's reservations (CNI GC, and the meta plugin's GC and
`netmeta gc`, which reach fixipam through here): release every reservation whose owner is not
a valid attachment, damaged (quarantined) ones included — their owner cannot be known, and a
runtime's list of valid attachments is the complete list of who may hold an address.

`before`: a reservation written at or after this time is kept whatever its owner. The list of
valid attachments was taken before GC started, so an ADD that reserved since is not in it yet
(the meta plugin writes its DEL cache, which is where its valid list comes from, before any
delegate runs; a reservation older than the list therefore has its owner's cache in it)."""
import os

from cni import log

from .store import QUARANTINE, Store, describe

_log = log.get("fixipam")


def collect(data_dir: str, network: str, keep: set, before: float, containers=frozenset()) -> list:
    """Release the reservations of `network` not owned by a (containerID, ifname) in `keep`
    nor by any interface of a container in `containers`; returns the released addresses."""
    store = Store(data_dir, network)
    gone: list[str] = []       # the released keys (addresses)
    if not os.path.isdir(store.dir):
        return gone
    with store.lock():
        for key, rec in list(store.entries()):
            if rec is None:   # released while we listed
                continue
            if not rec.get("damaged") and ((rec.get("containerID"), rec.get("ifname")) in keep
                                           or rec.get("containerID") in containers):
                continue
            t = store.mtime(key)
            if t is None or t >= before:
                continue
            store.release(key)
            gone.append(key)
            _log.info("gc released %s on %s (owner %s)", key, network, describe(rec))
    return gone


def damaged(data_dir: str, network: str) -> list:
    """The addresses of `network` held by a quarantined (damaged) reservation, for reports."""
    try:
        return sorted(os.listdir(os.path.join(Store(data_dir, network).dir, QUARANTINE)))
    except (FileNotFoundError, NotADirectoryError):
        return []

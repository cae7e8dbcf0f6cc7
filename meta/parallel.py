"""A pod's attachments in waves: the cluster network (index 0) alone first, then the others
concurrently on a small thread pool (meta config `parallelAttachments`, default 4; 1 = one
after another, as Multus v4.1.4 does). A network whose config says `"serial": true` runs alone:
after every attachment before it has finished, before any after it starts (for delegates that
must not run beside another of the same pod). DEL runs the same waves in reverse order.

Everything the engine shares between attachments stays in the calling thread (the DEL cache,
results, events, network-status); a worker only runs one attachment's delegate(s), with the
caller's per-thread context (log container ID, the daemon's per-request fault point) copied in.
"""

from cni import fault, log, operation
from cni.errors import config_error

SERIAL_KEY = "serial"


def take_serial(att) -> None:
    """Move `"serial"` from the network's config (a conf, or a conflist's top level) into
    att.serial: no delegate ever sees the key (a strict plugin would refuse it)."""
    if SERIAL_KEY not in att.conf:
        return
    v = att.conf[SERIAL_KEY]
    if not isinstance(v, bool):
        raise config_error(f"{att.network}: {SERIAL_KEY}", "must be true or false")
    att.conf = {k: x for k, x in att.conf.items() if k != SERIAL_KEY}
    att.serial = v


def waves(atts: list, indices=None) -> list:
    """[[0], [1, 2, 3], [4 (serial)], [5, 6]]: index lists in pod order; each wave may run
    concurrently, waves one after another."""
    out: list[list[int]] = []
    for i in (range(len(atts)) if indices is None else sorted(indices)):
        if out and not _alone(atts[i]) and not _alone(atts[out[-1][-1]]):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _alone(att) -> bool:
    return att.default or att.serial


def _context():
    cid, want, op = log.current_container(), fault.current_request(), operation.current()

    def enter():
        log.set_container(cid)
        fault.for_request(want)
        operation.adopt(op)   # the deadline, and the token its delegates' calls of ours join by
    return enter


def run_wave(wave: list, fn, workers: int) -> dict:
    """fn(i) for every i of the wave: {i: ("ok", value) | ("err", exception)} once all have
    ended (a failure never leaves another one half-way: each delegate runs to its end)."""
    out = {}
    if len(wave) == 1 or workers <= 1:
        for i in wave:
            out[i] = _call(fn, i)
        return out
    # here, not at the top: concurrent.futures imports logging, and a pod with one attachment
    # (the plain thin call) never needs a pool
    from concurrent.futures import ThreadPoolExecutor
    enter = _context()

    def task(i):
        enter()
        try:
            return _call(fn, i)
        finally:
            fault.for_request(None)
            operation.adopt(None)
    with ThreadPoolExecutor(min(workers, len(wave)), thread_name_prefix="att") as pool:
        futures = {i: pool.submit(task, i) for i in wave}
        for i in wave:
            out[i] = futures[i].result()
    return out


def _call(fn, i):
    try:
        return ("ok", fn(i))
    except Exception as e:   # BaseException (SystemExit, KeyboardInterrupt) goes up as it is
        return ("err", e)


def add(atts: list, fn, workers: int, done: dict, failed: list, started: set) -> None:
    """ADD: waves in pod order, stopping after the first wave with a failure. Fills `done`
    ({index: result}), `failed` ([(index, exception)], pod order) and `started` (every index
    of every wave begun: what a rollback undoes, even when this raises BaseException)."""
    for wave in waves(atts):
        started.update(wave)
        for i, (kind, v) in sorted(run_wave(wave, fn, workers).items()):
            if kind == "ok":
                done[i] = v
            else:
                failed.append((i, v))
        if failed:
            return


def delete(atts: list, fn, workers: int, indices=None) -> list:
    """DEL (and rollback): waves in reverse pod order, all of them whatever fails. Returns
    [(index, exception)] in the order a serial DEL would have met them (highest index first)."""
    failed = []
    for wave in reversed(waves(atts, indices)):
        for i, (kind, v) in sorted(run_wave(wave, fn, workers).items(), reverse=True):
            if kind == "err":
                failed.append((i, v))
    return failed

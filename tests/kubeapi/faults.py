"""Fault injection and the request log: the test-side controls no real API server has.

A `Fault` makes the next `count` requests that match (method, path regex, verb, resource) fail with
the Status kube-apiserver would send for that code (409 Conflict, 500 InternalError, 429 with
Retry-After, 504 Timeout, ...), or be delayed, or hang with no answer until the client gives up,
or have their connection dropped. The log records every request with its answer, so tests can
count API writes.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Fault:
    method: str | None = None
    path_regex: str | None = None
    status: int | None = None
    delay: float = 0.0
    count: int | None = 1          # None: until removed
    hang: bool | float = False     # True: until the client goes away / server stops; float: seconds
    close: bool = False            # drop the connection without an answer
    message: str | None = None
    retry_after: int | None = None
    verb: str | None = None
    resource: str | None = None
    hits: int = 0

    def matches(self, method, path, verb, resource):
        return ((self.method is None or self.method.upper() == method)
                and (self.path_regex is None or re.search(self.path_regex, path))
                and (self.verb is None or self.verb == verb)
                and (self.resource is None or self.resource == resource))

    @property
    def exhausted(self):
        return self.count is not None and self.hits >= self.count


class Faults:
    def __init__(self):
        self._lock = threading.Lock()
        self._faults = []

    def add(self, fault):
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method, path, verb, resource):
        """The first live fault matching this request, counted as hit; None if none."""
        with self._lock:
            for f in self._faults:
                if not f.exhausted and f.matches(method, path, verb, resource):
                    f.hits += 1
                    if f.exhausted:
                        self._faults.remove(f)
                    return f
        return None

    def clear(self):
        with self._lock:
            self._faults.clear()

    def pending(self):
        with self._lock:
            return list(self._faults)


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict
    content_type: str | None
    user: str | None = None
    token: str | None = None
    verb: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    body: object = None
    status: int | None = None
    fault: bool = False
    timestamp: float = field(default_factory=time.time)
    duration: float = 0.0

    def matches(self, method=None, path_regex=None, status=None, verb=None, resource=None,
                subresource=None, namespace=None, name=None, user=None, content_type=None):
        return ((method is None or self.method == method.upper())
                and (path_regex is None or re.search(path_regex, self.path))
                and (status is None or self.status == status)
                and (verb is None or self.verb == verb)
                and (resource is None or self.resource == resource)
                and (subresource is None or self.subresource == subresource)
                and (namespace is None or self.namespace == namespace)
                and (name is None or self.name == name)
                and (user is None or self.user == user)
                and (content_type is None or (self.content_type or "").startswith(content_type)))


class RequestLog:
    def __init__(self):
        self._lock = threading.Lock()
        self._records = []

    def add(self, record):
        with self._lock:
            self._records.append(record)

    def all(self):
        with self._lock:
            return list(self._records)

    def find(self, **filters):
        return [r for r in self.all() if r.matches(**filters)]

    def clear(self):
        with self._lock:
            self._records.clear()

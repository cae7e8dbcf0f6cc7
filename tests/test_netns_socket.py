"""cni/netns.py: sockets opened inside a pod netns by a throw-away thread (no fork), checked
against iproute2's view of the same namespaces."""
import os
import socket
import subprocess
import threading

import pytest

from cni import netns as nsock


def _ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def _links(ip) -> set:
    return {m.get_attr("IFLA_IFNAME") for m in ip.get_links()}


def test_rtnl_sees_and_changes_only_the_target_netns(netns, uid):
    a, b = netns("a"), netns("b")
    subprocess.run(["ip", "-n", a, "link", "add", f"da{uid}", "type", "veth", "peer", "name", f"pa{uid}"],
                   check=True)
    with nsock.rtnl(_ns_path(b)) as ip:
        assert _links(ip) == {"lo"}
        ip.link("add", ifname=f"db{uid}", kind="veth", peer=f"qb{uid}")   # no dummy module here
    with nsock.rtnl(_ns_path(a)) as ip:
        assert _links(ip) == {"lo", f"da{uid}", f"pa{uid}"}
    out = subprocess.run(["ip", "-n", b, "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"db{uid}" in out
    host = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f"db{uid}" not in host and f"da{uid}" not in host


def test_caller_thread_stays_in_its_netns_and_nothing_forks(netns):
    a = netns("a")
    forks = []
    os.register_at_fork(before=lambda: forks.append(threading.current_thread().name))
    before = os.readlink("/proc/thread-self/ns/net")
    s = nsock.socket_in(_ns_path(a), socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.close()
    with nsock.rtnl(_ns_path(a)):
        pass
    assert os.readlink("/proc/thread-self/ns/net") == before
    target = os.stat(_ns_path(a)).st_ino
    assert f"net:[{target}]" != before
    assert forks == []


def test_missing_path_is_an_error_and_creates_nothing(uid):
    path = f"/var/run/netns/nmt{uid}gone"
    with pytest.raises(FileNotFoundError):
        nsock.socket_in(path, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    assert not os.path.exists(path)


def test_path_that_is_not_a_netns_is_refused(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    with pytest.raises(OSError) as e:
        nsock.socket_in(str(f), socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    assert e.value.errno == 22 and e.value.filename == str(f)

"""netmeta's kubelet PodResources client (meta/podresources) against the stand-in kubelet
(tests/podresources_standin.py: the real v1 protocol, gRPC over a unix socket) and kubelet
checkpoint files; and its schema against its own api.proto, compiled by protoc.

Pinned behaviour: Multus v4.1.4 pkg/kubeletclient (GetResourceClient: the socket when it exists,
else pkg/checkpoint; GetPodResourceMap / getDevicePluginResources: a pod's devices of every
container, per resource, in order), pkg/checkpoint (GetPodResourceMap: entries of the pod's UID)."""
import os
import shutil
import subprocess

import pytest

from meta import podresources
from meta.podresources import schema
from tests.podresources_standin import PodResourcesServer, write_checkpoint

RES = "intel.com/sriov_netdevice"


@pytest.fixture
def kubelet(tmp_path):
    servers = []

    def start(get=True):
        s = PodResourcesServer(str(tmp_path / f"kubelet{len(servers)}.sock"), get=get).start()
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


@pytest.mark.parametrize("get", [True, False, "disabled"])
def test_devices_of_the_pod_in_order_by_get_or_list(kubelet, tmp_path, get):
    s = kubelet(get)
    s.set_pod("team", "web", {"app": {RES: ["0000:01:00.3", "0000:01:00.1"], "other/res": ["x"]},
                              "sidecar": {RES: ["0000:01:00.5"]}})
    s.set_pod("team", "db", {"app": {RES: ["0000:01:00.2"]}})
    got = podresources.pod_devices("team", "web", "uid-1", s.path, str(tmp_path / "none"))
    assert got == {RES: ["0000:01:00.3", "0000:01:00.1", "0000:01:00.5"], "other/res": ["x"]}
    assert podresources.pod_devices("team", "nobody", None, s.path) == {}
    # a kubelet without Get is asked List; and straight away the next time
    expected = {True: ["Get", "Get"], False: ["Get", "List", "List"], "disabled": ["Get", "List", "List"]}[get]
    assert s.calls == expected


def test_all_devices_for_the_daemon(kubelet):
    s = kubelet()
    s.set_pod("a", "p", {"c": {RES: ["0000:01:00.1"]}})
    s.set_pod("b", "q", {"c": {RES: ["0000:01:00.2"]}})
    assert podresources.all_devices(s.path) == {("a", "p"): {RES: ["0000:01:00.1"]}, ("b", "q"): {RES: ["0000:01:00.2"]}}


def test_socket_that_does_not_answer_is_try_again(tmp_path):
    import socket as so
    path = str(tmp_path / "dead.sock")
    sk = so.socket(so.AF_UNIX)
    sk.bind(path)   # exists, nobody accepts
    try:
        with pytest.raises(Exception) as ei:
            podresources.pod_devices("a", "b", None, path, timeout=2)
        assert getattr(ei.value, "code", None) == 11 and path in ei.value.msg
    finally:
        sk.close()


def test_checkpoint_fallback_when_the_socket_is_absent(tmp_path):
    ck = str(tmp_path / "kubelet_internal_checkpoint")
    write_checkpoint(ck, [("uid-1", "app", RES, {1: ["0000:01:00.4"], 0: ["0000:01:00.2"]}),
                          ("uid-2", "app", RES, {0: ["0000:01:00.7"]}),
                          ("uid-1", "side", "other/res", {0: ["y"]})])
    got = podresources.pod_devices("team", "web", "uid-1", str(tmp_path / "absent.sock"), ck)
    assert got == {RES: ["0000:01:00.2", "0000:01:00.4"], "other/res": ["y"]}
    # neither socket nor checkpoint: not a kubelet node (None), distinct from "no devices" ({})
    assert podresources.pod_devices("team", "web", "uid-1", str(tmp_path / "a.sock"), str(tmp_path / "b")) is None
    assert podresources.pod_devices("team", "web", "uid-9", str(tmp_path / "a.sock"), ck) == {}
    (tmp_path / "bad").write_text("{not json")
    with pytest.raises(Exception) as ei:
        podresources.pod_devices("team", "web", "uid-1", str(tmp_path / "a.sock"), str(tmp_path / "bad"))
    assert ei.value.code == 11


def test_pre_1_20_checkpoint_with_a_device_list(tmp_path):
    ck = tmp_path / "cp"
    ck.write_text('{"Data":{"PodDeviceEntries":[{"PodUID":"u","ContainerName":"c","ResourceName":"r",'
                  '"DeviceIDs":["d1","d2"],"AllocResp":""}],"RegisteredDevices":{}},"Checksum":1}')
    assert podresources.pod_devices("n", "p", "u", str(tmp_path / "x.sock"), str(ck)) == {"r": ["d1", "d2"]}


@pytest.mark.skipif(shutil.which("protoc") is None, reason="needs protoc (Debian protobuf-compiler)")
def test_schema_matches_its_proto_file(tmp_path):
    from google.protobuf import descriptor_pb2
    here = os.path.dirname(schema.__file__)
    out = tmp_path / "set.pb"
    subprocess.run(["protoc", f"-I{here}", f"--descriptor_set_out={out}", "api.proto"], check=True)
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    compiled, ours = fds.file[0], schema.file_descriptor()
    for d in (compiled, ours):
        d.name = "api.proto"
        d.ClearField("options")
        for m in d.message_type:
            for f in m.field:
                f.ClearField("json_name")
        for meth in d.service[0].method:
            meth.ClearField("options")   # `{}` after an rpc is an empty options message
    assert sorted(m.SerializeToString(deterministic=True) for m in compiled.message_type) == \
        sorted(m.SerializeToString(deterministic=True) for m in ours.message_type)
    assert compiled.service[0].SerializeToString(deterministic=True) == ours.service[0].SerializeToString(deterministic=True)
    assert compiled.package == ours.package and compiled.syntax == ours.syntax


def test_any_checkpoint_content_is_devices_or_a_clean_error(tmp_path):
    """The checkpoint is the kubelet's file, but it may be torn or of another version: whatever
    it holds, the reader returns {resource: [str]} or raises CNIError code 11, nothing else."""
    import json as _json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from cni.errors import CNIError
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                          max_leaves=12)
    entry = st.fixed_dictionaries({"PodUID": st.sampled_from(["u", "v", 3, None]), "ResourceName": values,
                                   "DeviceIDs": values})
    doc = st.one_of(values, st.fixed_dictionaries({"Data": st.fixed_dictionaries(
        {"PodDeviceEntries": st.one_of(values, st.lists(st.one_of(entry, values), max_size=4))})}))
    path = tmp_path / "cp"

    @settings(max_examples=300, deadline=None)
    @given(doc)
    def check(obj):
        path.write_text(_json.dumps(obj))
        try:
            out = podresources.pod_devices("n", "p", "u", str(tmp_path / "no.sock"), str(path))
        except CNIError as e:
            assert e.code == 11
            return
        assert isinstance(out, dict) and all(isinstance(v, list) and all(isinstance(d, str) for d in v)
                                             for v in out.values())
    check()

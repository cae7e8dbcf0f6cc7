"""A stand-in for the kubelet's PodResources API (v1): a gRPC server on a unix socket serving
`v1.PodResourcesLister` List / Get / GetAllocatableResources from what a test puts in it, and
kubelet device-manager checkpoint files.

Its messages are the kubelet's full v1 messages as kubernetes/kubelet's
pkg/apis/podresources/v1/api.proto (v0.31.0) defines them — with cpu_ids, memory and topology,
which netmeta's minimal schema leaves out — built here independently of meta/podresources, so
a wrong field number on either side shows, and the unknown fields prove netmeta skips them."""
import json
import threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

S, I64, U64 = "string", "int64", "uint64"
# kubelet v1 messages: (field, number, type, repeated); DynamicResource left out (not served)
KUBELET_V1 = {
    "NUMANode": [("ID", 1, I64, False)],
    "TopologyInfo": [("nodes", 1, "NUMANode", True)],
    "ContainerDevices": [("resource_name", 1, S, False), ("device_ids", 2, S, True),
                         ("topology", 3, "TopologyInfo", False)],
    "ContainerMemory": [("memory_type", 1, S, False), ("size", 2, U64, False),
                        ("topology", 3, "TopologyInfo", False)],
    "ContainerResources": [("name", 1, S, False), ("devices", 2, "ContainerDevices", True),
                           ("cpu_ids", 3, I64, True), ("memory", 4, "ContainerMemory", True)],
    "PodResources": [("name", 1, S, False), ("namespace", 2, S, False),
                     ("containers", 3, "ContainerResources", True)],
    "ListPodResourcesRequest": [],
    "ListPodResourcesResponse": [("pod_resources", 1, "PodResources", True)],
    "GetPodResourcesRequest": [("pod_name", 1, S, False), ("pod_namespace", 2, S, False)],
    "GetPodResourcesResponse": [("pod_resources", 1, "PodResources", False)],
    "AllocatableResourcesRequest": [],
    "AllocatableResourcesResponse": [("devices", 1, "ContainerDevices", True), ("cpu_ids", 2, I64, True),
                                     ("memory", 3, "ContainerMemory", True)],
}


def _messages() -> dict:
    F = descriptor_pb2.FieldDescriptorProto
    scalar = {S: F.TYPE_STRING, I64: F.TYPE_INT64, U64: F.TYPE_UINT64}
    fd = descriptor_pb2.FileDescriptorProto(name="standin/kubelet/podresources/v1.proto", package="v1",
                                            syntax="proto3")
    for name, fields in KUBELET_V1.items():
        m = fd.message_type.add(name=name)
        for fname, num, ftype, rep in fields:
            f = m.field.add(name=fname, number=num, label=F.LABEL_REPEATED if rep else F.LABEL_OPTIONAL)
            if ftype in scalar:
                f.type = scalar[ftype]
            else:
                f.type, f.type_name = F.TYPE_MESSAGE, f".v1.{ftype}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    fdesc = pool.FindFileByName(fd.name)
    return {n: message_factory.GetMessageClass(fdesc.message_types_by_name[n]) for n in KUBELET_V1}


M = _messages()


class PodResourcesServer:
    """pods: {(namespace, name): {container: {resource: [device ids]}}}. `get` False = a kubelet
    without Get (UNIMPLEMENTED, like kubelets before 1.27); "disabled" = the gate off (UNKNOWN)."""

    def __init__(self, socket_path: str, get=True):
        self.path, self.get_mode = socket_path, get
        self.pods: dict = {}
        self.allocatable: dict = {}
        self.calls: list = []
        self._lock = threading.Lock()
        self._server = None

    def set_pod(self, namespace: str, name: str, containers: dict) -> None:
        with self._lock:
            self.pods[(namespace, name)] = containers

    def _pod_msg(self, key, containers):
        return M["PodResources"](name=key[1], namespace=key[0], containers=[
            M["ContainerResources"](
                name=c, cpu_ids=[2, 3],   # fields netmeta does not know: must be skipped
                memory=[M["ContainerMemory"](memory_type="memory", size=1 << 20)],
                devices=[M["ContainerDevices"](resource_name=r, device_ids=ids, topology=M["TopologyInfo"](
                    nodes=[M["NUMANode"](ID=0)])) for r, ids in res.items()])
            for c, res in containers.items()])

    def _list(self, request, context):
        with self._lock:
            self.calls.append("List")
            return M["ListPodResourcesResponse"](pod_resources=[self._pod_msg(k, v) for k, v in self.pods.items()])

    def _get(self, request, context):
        with self._lock:
            self.calls.append("Get")
            if self.get_mode is False:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "unknown method Get")
            if self.get_mode == "disabled":   # kubelet server.go: fmt.Errorf -> codes.Unknown
                context.abort(grpc.StatusCode.UNKNOWN, "PodResources API Get method disabled")
            key = (request.pod_namespace, request.pod_name)
            if key not in self.pods:
                context.abort(grpc.StatusCode.UNKNOWN, f"pod {request.pod_name} not found in {request.pod_namespace}")
            return M["GetPodResourcesResponse"](pod_resources=self._pod_msg(key, self.pods[key]))

    def _allocatable(self, request, context):
        with self._lock:
            self.calls.append("GetAllocatableResources")
            return M["AllocatableResourcesResponse"](devices=[
                M["ContainerDevices"](resource_name=r, device_ids=ids) for r, ids in self.allocatable.items()])

    def start(self) -> "PodResourcesServer":
        handlers = {
            "List": grpc.unary_unary_rpc_method_handler(self._list, M["ListPodResourcesRequest"].FromString,
                                                        M["ListPodResourcesResponse"].SerializeToString),
            "Get": grpc.unary_unary_rpc_method_handler(self._get, M["GetPodResourcesRequest"].FromString,
                                                       M["GetPodResourcesResponse"].SerializeToString),
            "GetAllocatableResources": grpc.unary_unary_rpc_method_handler(
                self._allocatable, M["AllocatableResourcesRequest"].FromString,
                M["AllocatableResourcesResponse"].SerializeToString),
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("v1.PodResourcesLister", handlers),))
        self._server.add_insecure_port("unix://" + self.path)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None


def write_checkpoint(path: str, entries: list) -> None:
    """A kubelet_internal_checkpoint (pkg/kubelet/cm/devicemanager/checkpoint, kubelet >= 1.20):
    entries = [(pod uid, container, resource, {numa node: [device ids]})]."""
    data = {"Data": {"PodDeviceEntries": [
        {"PodUID": uid, "ContainerName": c, "ResourceName": r, "DeviceIDs": {str(k): v for k, v in ids.items()},
         "AllocResp": "CgA="} for uid, c, r, ids in entries],
        "RegisteredDevices": {}}, "Checksum": 1234567}
    with open(path, "w") as f:
        json.dump(data, f)

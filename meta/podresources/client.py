"""PodResources v1 client over the kubelet's unix socket (service v1.PodResourcesLister).

`Get` (kubelet >= 1.27, behind the KubeletPodResourcesGet gate) returns one pod; older kubelets
answer UNIMPLEMENTED and a kubelet with the gate off UNKNOWN ("Get method disabled"): then
`List`, as Multus v4.1.4 always does (pkg/kubeletclient getPodResources). A socket that says
Get is missing is remembered, so the daemon asks List straight away next time."""
import threading

import grpc

from cni import log
from cni.errors import TRY_AGAIN, CNIError

from .schema import M, method_path

_log = log.get("podresources")
MAX_MSG = 16 * 1024 * 1024          # Multus's defaultPodResourcesMaxSize
_no_get: set = set()
_channels: dict = {}
_lock = threading.Lock()


def _channel(socket: str) -> grpc.Channel:
    with _lock:
        ch = _channels.get(socket)
        if ch is None:
            ch = _channels[socket] = grpc.insecure_channel(
                "unix://" + socket, options=[("grpc.max_receive_message_length", MAX_MSG)])
        return ch


def _call(socket: str, method: str, request, response: str, timeout: float):
    rpc = _channel(socket).unary_unary(method_path(method), request_serializer=type(request).SerializeToString,
                                       response_deserializer=M[response].FromString)
    return rpc(request, timeout=timeout)


def _fail(socket: str, method: str, e: grpc.RpcError) -> CNIError:
    with _lock:   # a kubelet restart replaces the socket: dial afresh next time
        ch = _channels.pop(socket, None)
    if ch is not None:
        ch.close()
    return CNIError(TRY_AGAIN, f"failed to ask the kubelet's PodResources API ({method}) at {socket}",
                    f"{e.code().name}: {e.details()}")


def _merge(pod, out: dict) -> None:
    # Multus getDevicePluginResources: every container's devices of a resource, in order
    for c in pod.containers:
        for d in c.devices:
            out.setdefault(d.resource_name, []).extend(d.device_ids)


def pod_devices(socket: str, namespace: str, name: str, timeout: float) -> dict:
    out: dict = {}
    if socket not in _no_get:
        try:
            resp = _call(socket, "Get", M["GetPodResourcesRequest"](pod_name=name, pod_namespace=namespace),
                         "GetPodResourcesResponse", timeout)
            _merge(resp.pod_resources, out)
            return out
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNKNOWN and "not found" in (e.details() or ""):
                return out   # the kubelet knows no such pod: it has no devices
            if e.code() == grpc.StatusCode.UNIMPLEMENTED or "disabled" in (e.details() or ""):
                _log.info("kubelet at %s has no PodResources Get: using List", socket)
                _no_get.add(socket)
            else:
                raise _fail(socket, "Get", e) from None
    try:
        resp = _call(socket, "List", M["ListPodResourcesRequest"](), "ListPodResourcesResponse", timeout)
    except grpc.RpcError as e:
        raise _fail(socket, "List", e) from None
    for pod in resp.pod_resources:
        if pod.name == name and pod.namespace == namespace:
            _merge(pod, out)
    return out


def all_devices(socket: str, timeout: float) -> dict:
    try:
        resp = _call(socket, "List", M["ListPodResourcesRequest"](), "ListPodResourcesResponse", timeout)
    except grpc.RpcError as e:
        raise _fail(socket, "List", e) from None
    out: dict = {}
    for pod in resp.pod_resources:
        _merge(pod, out.setdefault((pod.namespace, pod.name), {}))
    return out


def allocatable(socket: str, timeout: float) -> dict:
    """{resource: [device IDs]} every device plugin registered (kubelet >= 1.23; older: {})."""
    try:
        resp = _call(socket, "GetAllocatableResources", M["AllocatableResourcesRequest"](),
                     "AllocatableResourcesResponse", timeout)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED or "disabled" in (e.details() or ""):
            return {}
        raise _fail(socket, "GetAllocatableResources", e) from None
    out: dict = {}
    for d in resp.devices:
        out.setdefault(d.resource_name, []).extend(d.device_ids)
    return out

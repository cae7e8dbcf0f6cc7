"""Which devices the kubelet allocated to a pod, per resource name: the PodResources API (v1,
gRPC over the kubelet's unix socket) when its socket exists, else the device manager's
checkpoint file, as Multus v4.1.4 does (pkg/kubeletclient GetResourceClient). Imported only
when a network has a resourceName: grpc and protobuf stay off every other ADD's path."""
import os

SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"


def pod_devices(namespace: str, name: str, uid: str | None, socket: str = SOCKET,
                checkpoint: str = CHECKPOINT, timeout: float = 10.0) -> dict | None:
    """{resource name: [device IDs in the kubelet's order]} for the pod; None when this node has
    neither (no kubelet device manager: a kubelet writes its checkpoint at start-up, so a real
    node always has one of them). Raises CNIError."""
    if os.path.exists(socket):
        from . import client
        return client.pod_devices(socket, namespace, name, timeout)
    if not os.path.exists(checkpoint):
        return None
    from . import checkpoint as ck
    return ck.pod_devices(checkpoint, uid)


def all_devices(socket: str = SOCKET, timeout: float = 10.0) -> dict:
    """{(namespace, pod): {resource: [device IDs]}} for every pod (the daemon's coexistence view)."""
    from . import client
    return client.all_devices(socket, timeout)

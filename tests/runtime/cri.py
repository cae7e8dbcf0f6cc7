"""A CRI v1 client over containerd's unix socket (PyPI `container-runtime-interface-api` stubs),
making the sandbox calls kubelet makes for a pod: RunPodSandbox -> PodSandboxStatus ->
StopPodSandbox -> RemovePodSandbox. Every netns path it sees is remembered so the harness can
remove one a failed test left behind."""
import json

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as rpc

READY = pb.SANDBOX_READY
NOTREADY = pb.SANDBOX_NOTREADY


class CRIClient:
    def __init__(self, socket_path: str, timeout: float = 60.0):
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.runtime = rpc.RuntimeServiceStub(self.channel)
        self.images = rpc.ImageServiceStub(self.channel)
        self.timeout = timeout
        self.netns_seen: set = set()

    def close(self) -> None:
        self.channel.close()

    def version(self, timeout: float | None = None) -> str:
        return self.runtime.Version(pb.VersionRequest(), timeout=timeout or self.timeout).runtime_version

    def status(self) -> dict:
        """{condition type: (status, reason, message)} (RuntimeReady, NetworkReady)."""
        st = self.runtime.Status(pb.StatusRequest(), timeout=self.timeout).status
        return {c.type: (c.status, c.reason, c.message) for c in st.conditions}

    def image_present(self, ref: str) -> bool:
        r = self.images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)), timeout=self.timeout)
        return r.HasField("image")

    @staticmethod
    def sandbox_config(name, namespace, uid, annotations=None, labels=None, attempt=0, port_mappings=()):
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=attempt),
            hostname=name[:63], labels=dict(labels or {}), annotations=dict(annotations or {}),
            port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=c, host_port=h) for c, h in port_mappings],
            linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.POD, ipc=pb.POD))))

    def run_pod_sandbox(self, name, namespace, uid, annotations=None, labels=None, attempt=0,
                        port_mappings=()) -> str:
        cfg = self.sandbox_config(name, namespace, uid, annotations, labels, attempt, port_mappings)
        sid = self.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=self.timeout).pod_sandbox_id
        self.netns_path(sid)
        return sid

    def pod_sandbox_status(self, sid: str, verbose: bool = True):
        """(PodSandboxStatus, the verbose info parsed from containerd's JSON)."""
        r = self.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=verbose),
                                          timeout=self.timeout)
        info = json.loads(r.info["info"]) if "info" in r.info else {}
        return r.status, info

    def netns_path(self, sid: str) -> str | None:
        """The sandbox's network namespace (containerd's info: runtimeSpec's network namespace)."""
        _, info = self.pod_sandbox_status(sid)
        path = None
        for ns in (info.get("runtimeSpec") or {}).get("linux", {}).get("namespaces", []):
            if ns.get("type") == "network":
                path = ns.get("path")
        path = path or (info.get("metadata") or {}).get("NetNSPath")
        if path:
            self.netns_seen.add(path)
        return path

    def stop_pod_sandbox(self, sid: str) -> None:
        self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=self.timeout)

    def remove_pod_sandbox(self, sid: str) -> None:
        self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=self.timeout)

    def list_pod_sandbox(self) -> list:
        return list(self.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=self.timeout).items)

    def remove_all(self) -> list:
        """Stop and remove every sandbox (as kubelet does for pods gone); the ids it removed."""
        done = []
        for sb in self.list_pod_sandbox():
            for call in (self.stop_pod_sandbox, self.remove_pod_sandbox):
                try:
                    call(sb.id)
                except grpc.RpcError:
                    pass
            done.append(sb.id)
        return done

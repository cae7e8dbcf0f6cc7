"""The CNI configuration containerd's CRI plugin loads: a conflist whose one plugin is
`netmeta`, declaring the capabilities kubelet-path runtimes fill in (`runtimeConfig`):
`io.kubernetes.cri.pod-annotations` (the pod's annotations, so netmeta needs no pod GET) and
`portMappings`. Cluster default network: Debian bridge + host-local as an inline delegate."""
import os


def netmeta_conflist(*, kubeconfig: str, cni_dir: str, bridge: str, subnet: str, hostlocal_dir: str,
                     log_file: str | None = None, name: str = "netmeta", default_name: str = "cluster-net",
                     **extra) -> dict:
    plugin = {"type": "netmeta", "kubeconfig": kubeconfig, "cniDir": cni_dir,
              "capabilities": {"io.kubernetes.cri.pod-annotations": True, "portMappings": True},
              "delegates": [{"cniVersion": "1.0.0", "name": default_name, "type": "bridge", "bridge": bridge,
                             "isGateway": True,
                             "ipam": {"type": "host-local", "subnet": subnet, "dataDir": hostlocal_dir}}],
              **extra}
    if log_file:
        plugin.update(logFile=log_file, logLevel="debug")
    return {"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}


def host_local_leases(hostlocal_dir: str, network: str = "cluster-net") -> list:
    """host-local's reservation files (one per leased IP) of a network."""
    d = os.path.join(hostlocal_dir, network)
    return sorted(f for f in os.listdir(d) if f[0].isdigit()) if os.path.isdir(d) else []

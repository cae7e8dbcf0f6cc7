"""resourceName -> deviceID: the devices the kubelet allocated to the pod (PodResources, or the
checkpoint) handed to the attachments whose network has a `k8s.v1.cni.cncf.io/resourceName`,
with Multus v4.1.4's rules (pkg/k8sclient getKubernetesDelegate, pkg/types LoadDelegateNetConf):

- one lookup per ADD; the attachments of one resource take its devices in the kubelet's order,
  each the next unused one (Multus's ResourceInfo.Index);
- `deviceID` and `pciBusID` go into the conf, or into every plugin of a conflist
  (delegateAddDeviceID / addDeviceIDInConfList); `deviceID` also into runtimeConfig for
  plugins that declare the capability (mergeCNIRuntimeConfig);
- a CNIDeviceInfoFile path `<devinfo>/cni/<network>-<containerID>_<ifname>` is generated for
  an attachment with a device (delegateRuntimeConfig), see deviceinfo.py.

Neither the socket nor the checkpoint (no kubelet device manager: not a kubelet node) -> the
resourceName is ignored with a warning, as netmeta did before. Deliberately stricter than
Multus, which silently hands the delegate no deviceID when the pod has no (more) device of the
resource: that ADD fails here, naming the resource, before anything is attached."""
from cni import log
from cni.errors import INVALID_CONFIG, NO_DEVICE_ALLOCATED, CNIError

from . import deviceinfo

_log = log.get("devices")


def assign(atts: list, req, cfg) -> None:
    wanted = [a for a in atts if a.resource_name]
    ns, name = req.args.get("K8S_POD_NAMESPACE"), req.args.get("K8S_POD_NAME")
    if not wanted or not (ns and name):   # Multus: only for a pod it knows by name
        return
    bad = next((a for a in wanted if not isinstance(a.resource_name, str)), None)
    if bad is not None and req.command != "ADD":
        return
    if bad is not None:
        raise CNIError(INVALID_CONFIG, f"invalid resourceName annotation of network {bad.network}",
                       "k8s.v1.cni.cncf.io/resourceName must be a string")
    from . import podresources
    try:
        have = podresources.pod_devices(ns, name, req.args.get("K8S_POD_UID"), cfg.podresources_socket,
                                        cfg.checkpoint_file, min(cfg.delegate_timeout, 10.0))
    except CNIError:
        if req.command != "ADD":   # rebuilding a DEL cache: the devices may be gone already
            return
        raise
    if have is None:
        _log.warning("network(s) with resourceName %s but no kubelet PodResources socket (%s) nor "
                     "device checkpoint (%s) on this node: no deviceID handed over",
                     sorted({a.resource_name for a in wanted}), cfg.podresources_socket, cfg.checkpoint_file)
        return
    used: dict = {}
    for att in wanted:
        res = att.resource_name
        ids = have.get(res) or []
        n = used.get(res, 0)
        if n >= len(ids):
            if req.command != "ADD":
                continue
            raise CNIError(NO_DEVICE_ALLOCATED,
                           f"pod {ns}/{name} has no {'more ' if ids else ''}device of resource {res} "
                           f"for network {att.network}",
                           f"the kubelet allocated {len(ids)} {res} device(s) to the pod and "
                           f"{sum(1 for a in wanted if a.resource_name == res)} attachment(s) need one: "
                           f"request {res} in the pod's container resources, one per attachment")
        used[res] = n + 1
        inject(att, ids[n], req.container_id, cfg.devinfo_dir)
        _log.info("network %s on %s gets %s device %s", att.network, att.ifname, res, ids[n])


def inject(att, device_id: str, container_id: str, devinfo_dir: str) -> None:
    plugins = att.conf["plugins"] if isinstance(att.conf.get("plugins"), list) else [att.conf]
    for p in plugins:
        p["deviceID"] = device_id
        p["pciBusID"] = device_id
    att.runtime_config["deviceID"] = device_id
    att.runtime_config["CNIDeviceInfoFile"] = deviceinfo.cni_path(
        devinfo_dir, att.conf.get("name") or att.network, container_id, att.ifname)

"""conf/: every manifest is valid for Kubernetes (PyPI kubernetes-validate, strict; NADs against
the CRD's own openAPIV3Schema), every sample config loads through netmeta's parsers, every sample
pod's annotations parse and plan under the shipped policy, the files agree with each other
(ports, paths, names), and the ClusterRole grants exactly what DESIGN.md lists."""
import json
import os
import re

import pytest
import yaml

from cni.errors import CNIError
from cni.request import Request
from delegates.fixipam import config as fixipam_config
from delegates.sriov import config as sriov_config
from meta import config as meta_config
from meta import networks, overrides
from meta.annotations import parse as annotations
from meta.config import DEFAULT_CHECKPOINT, DEFAULT_DEVINFO_DIR, DEFAULT_PODRESOURCES
from meta.daemon import config as daemonconfig
from meta.install import main as install
from meta.plan import Planner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(REPO, "conf")
# the oldest release with native sidecars (the install init container) on by default, the two
# after it, and the newest kubernetes-validate ships
K8S_VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.37.0")
# kinds newer than the oldest release: validated from the release that has them
SINCE = {("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"): "1.30.0",
         ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"): "1.30.0"}
NAD_KIND = "NetworkAttachmentDefinition"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
FREE_VF_LABEL = "sriov/freeVFAvailable"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# DESIGN.md "Policy and security": read NADs and pods, patch pods (network-status), patch nodes
# (availability); get nodes (found by name); fixipam's cluster-wide reservations (create is the
# lock, get names the holder, list + delete release and GC). Nothing else: widening this set fails.
EXPECTED_GRANTS = {
    ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"), ("", "pods", "patch"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
    ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
    ("", "nodes", "get"), ("", "nodes", "patch"),
    ("netmeta.io", "fixedipreservations", "get"), ("netmeta.io", "fixedipreservations", "list"),
    ("netmeta.io", "fixedipreservations", "create"), ("netmeta.io", "fixedipreservations", "delete"),
    ("", "events", "create"),   # Events on pods (meta/events.py), as Multus records them
}


def _manifests():
    out = []
    for d, dirs, files in os.walk(CONF):
        dirs.sort()
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                path = os.path.join(d, f)
                with open(path) as fh:
                    for i, doc in enumerate(yaml.safe_load_all(fh)):
                        if doc is not None:
                            out.append((os.path.relpath(path, CONF), i, doc))
    return out


DOCS = _manifests()


def docs(kind):
    return [doc for _, _, doc in DOCS if doc.get("kind") == kind]


def one(kind, name=None):
    found = [d for d in docs(kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''} in conf/, found {len(found)}"
    return found[0]


def doc_id(item):
    return f"{item[0]}#{item[1]}:{item[2].get('kind')}/{item[2].get('metadata', {}).get('name')}"


def configmap():
    return one("ConfigMap", "netmeta-config")


def daemonset():
    return one("DaemonSet", "netmeta")


def pod_spec():
    return daemonset()["spec"]["template"]["spec"]


def container(name):
    spec = pod_spec()
    (c,) = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    return c


SHIPPED_HOST_ROOT = "/hostroot"


def daemon_cfg(tmp_path):
    """The shipped daemon.yaml, loaded; its hostRoot (a DaemonSet mount this machine lacks) is
    checked here and pointed at a directory that exists."""
    d = yaml.safe_load(configmap()["data"]["daemon.yaml"])
    assert d["hostRoot"] == SHIPPED_HOST_ROOT
    p = tmp_path / "daemon.yaml"
    p.write_text(yaml.safe_dump(dict(d, hostRoot=str(tmp_path))))
    return daemonconfig.load(str(p))


def sample_nads():
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs(NAD_KIND)}


def sample_pods():
    return [d for d in docs("Pod")]


# ---------------- schema validation ----------------
def _strict(schema):
    """The CRD schema as the API server applies it with strict field validation: unknown
    fields are errors wherever the schema lists properties (and does not preserve unknowns)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "description"}
        if schema.get("type") == "object" and "properties" in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _validate_custom(doc):
    import jsonschema
    crds = [c for c in docs("CustomResourceDefinition") if c["spec"]["names"]["kind"] == doc["kind"]]
    assert crds, f"no CRD in conf/ defines {doc['kind']}"
    crd = crds[0]
    group, _, version = doc["apiVersion"].partition("/")
    assert group == crd["spec"]["group"]
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    jsonschema.Draft7Validator(_strict(v["schema"]["openAPIV3Schema"])).validate(doc)
    meta = doc["metadata"]
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}, meta
    assert DNS1123_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253
    assert (crd["spec"]["scope"] == "Namespaced") == ("namespace" in meta)
    if "namespace" in meta:
        assert DNS1123_LABEL.match(meta["namespace"])
    for k in ("labels", "annotations"):
        assert all(isinstance(x, str) for x in meta.get(k, {}).values())


def _kustomization(path, doc):
    assert doc["apiVersion"].startswith("kustomize.config.k8s.io/")
    for res in doc.get("resources", []):
        assert os.path.isfile(os.path.join(CONF, os.path.dirname(path), res)), f"{path}: no {res}"


def _scheduler_config(path, doc):
    assert doc["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    for ext in doc.get("extenders", []):
        assert set(ext) <= {"urlPrefix", "filterVerb", "preemptVerb", "prioritizeVerb", "weight", "bindVerb",
                            "enableHTTPS", "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources",
                            "ignorable"}, f"{path}: {sorted(ext)}"
        assert ext["urlPrefix"].startswith(("http://", "https://"))


def _podmonitor(path, doc):
    """Prometheus Operator's PodMonitor (its CRD is not in kubernetes-validate): the fields used
    exist in monitoring.coreos.com/v1 and point at the daemon's named metrics port."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel", "podTargetLabels"}
    assert spec["selector"]["matchLabels"].items() <= daemonset()["spec"]["template"]["metadata"]["labels"].items()
    assert spec["namespaceSelector"]["matchNames"] == [daemonset()["metadata"]["namespace"]]
    ports = {p["name"]: p["containerPort"] for p in container("daemon")["ports"]}
    for ep in spec["podMetricsEndpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scheme", "scrapeTimeout", "relabelings"}, path
        assert ep["port"] in ports and ep["path"] == "/metrics" and ep["scheme"] == "http"


# files read by tools, not API objects (no schema in kubernetes-validate): checked by hand
TOOL_CONFIGS = {"Kustomization": _kustomization, "KubeSchedulerConfiguration": _scheduler_config,
                "PodMonitor": _podmonitor}


@pytest.mark.parametrize("item", DOCS, ids=doc_id)
def test_every_manifest_is_valid_for_kubernetes(item):
    kv = pytest.importorskip("kubernetes_validate")
    path, _, doc = item
    if doc["kind"] == NAD_KIND:
        _validate_custom(doc)
        return
    if doc["kind"] in TOOL_CONFIGS:
        TOOL_CONFIGS[doc["kind"]](path, doc)
        return
    since = SINCE.get((doc["apiVersion"], doc["kind"]), K8S_VERSIONS[0])
    for version in K8S_VERSIONS:
        if tuple(map(int, version.split("."))) < tuple(map(int, since.split("."))):
            with pytest.raises(kv.SchemaNotFoundError):   # really absent there
                kv.validate(doc, version, strict=True)
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{path}: {doc['kind']}/{doc['metadata'].get('name')} invalid for Kubernetes "
                        f"{version} at {'.'.join(map(str, e.path))}: {e.message}")


def test_a_widened_or_misspelt_manifest_is_caught():
    """The validation above really is strict (guards against a validator that accepts all)."""
    kv = pytest.importorskip("kubernetes_validate")
    ds = json.loads(json.dumps(daemonset()))
    ds["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(ds, K8S_VERSIONS[-1], strict=True)
    nad = json.loads(json.dumps(docs(NAD_KIND)[0]))
    nad["spec"]["confg"] = "{}"
    import jsonschema
    with pytest.raises(jsonschema.ValidationError):
        _validate_custom(nad)


def test_conf_holds_every_piece_and_the_readme_names_each_file():
    kinds = {d["kind"] for _, _, d in DOCS}
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
            "DaemonSet", NAD_KIND, "Pod"} <= kinds
    assert os.path.isfile(os.path.join(CONF, "Containerfile"))
    with open(os.path.join(CONF, "README.md")) as f:
        readme = f.read()
    for name in os.listdir(CONF):
        if name == "README.md" or name == "samples":
            continue
        shown = f"`{name}/`" if os.path.isdir(os.path.join(CONF, name)) else f"`{name}`"
        assert shown in readme, f"conf/README.md does not describe {shown}"
    for rel in {p for p, _, _ in DOCS if p.startswith("samples/")}:
        pattern = "`samples/pod-*.yaml`" if rel.startswith("samples/pod-") else f"`{rel}`"
        assert pattern in readme, f"conf/README.md does not describe {rel}"


# ---------------- RBAC ----------------
def _grants(rules):
    out = set()
    for r in rules:
        assert set(r) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule keys {sorted(r)} (resourceNames, nonResourceURLs?)"  # noqa: E501
        for g in r["apiGroups"]:
            for res in r["resources"]:
                for v in r["verbs"]:
                    assert "*" not in (g, res, v), f"wildcard in {r}"
                    out.add((g, res, v))
    return out


def test_clusterrole_grants_exactly_what_design_lists():
    role = one("ClusterRole", "netmeta")
    assert "aggregationRule" not in role
    assert _grants(role["rules"]) == EXPECTED_GRANTS
    # nothing else in conf/ grants the daemon's account anything
    sa = one("ServiceAccount", "netmeta")
    for b in docs("ClusterRoleBinding") + docs("RoleBinding"):
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == sa["metadata"]["name"]
               and s.get("namespace") == sa["metadata"]["namespace"] for s in b.get("subjects", [])):
            assert b["kind"] == "ClusterRoleBinding" and b["roleRef"]["name"] == "netmeta", b["metadata"]["name"]


def test_no_role_in_conf_has_wildcards_or_dangerous_grants():
    for role in docs("ClusterRole") + docs("Role"):
        assert "aggregationRule" not in role
        for _g, res, verb in _grants(role["rules"]):
            assert res not in ("secrets", "clusterroles", "clusterrolebindings", "roles", "rolebindings"), role["metadata"]
            assert verb not in ("escalate", "bind", "impersonate", "deletecollection"), role["metadata"]


def test_clusterrole_is_bound_to_the_daemonsets_service_account_only():
    sa = one("ServiceAccount", "netmeta")
    binding = one("ClusterRoleBinding", "netmeta")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "netmeta"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    assert pod_spec()["serviceAccountName"] == sa["metadata"]["name"]
    assert daemonset()["metadata"]["namespace"] == sa["metadata"]["namespace"]


def test_clusterrole_is_enough_for_netmeta_and_nothing_more(tmp_path):
    """netmeta's own client, with a token holding only the ClusterRole's rules, against the test
    API server (which enforces RBAC-like rules): every call netmeta makes succeeds (watch caches,
    pod GET and PATCH, NAD GET, node GET and PATCH); others are forbidden."""
    from cni.kube.client import ApiError
    from meta.kube.api import Kube
    from tests.kubeapi import KubeAPIServer, objects
    rules = [(r["verbs"], [f"{res}.{g}" if g else res for g in r["apiGroups"] for res in r["resources"]])
             for r in one("ClusterRole", "netmeta")["rules"]]
    srv = KubeAPIServer(tokens={"admin-token": "*", "netmeta-token": {
        "user": "system:serviceaccount:kube-system:netmeta", "rules": rules}}).start()
    kube = None
    try:
        srv.create(one("CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io"))
        srv.create(one("CustomResourceDefinition", "fixedipreservations.netmeta.io"))
        for nad in sample_nads().values():
            srv.create(nad)
        srv.create(objects.node("node1"))
        srv.create(objects.pod("p1", namespace="default", node="node1"))
        kube = Kube(srv.kubeconfig(str(tmp_path / "kubeconfig"), token="netmeta-token"), timeout=5)
        kube.start_caches("node1")
        nad = kube.get_nad("default", "sriov-vlan")
        assert networks.from_nad(nad, "/nonexistent").main_type == "sriov"
        assert kube.get_pod("default", "p1")["metadata"]["name"] == "p1"
        kube.patch_pod_annotations("default", "p1", {"k8s.v1.cni.cncf.io/network-status": "[]"})
        assert kube.get_node("node1")["metadata"]["name"] == "node1"
        kube.patch_node("node1", {"metadata": {"labels": {FREE_VF_LABEL: "true"}}})
        # fixipam's cluster reservations through the same identity: create, 409, get, list, delete
        from delegates.fixipam import cluster
        fx = cluster.Api(kube.http, "node1")
        assert fx.probe() is True
        owner = cluster.Owner("c1", "net1", "default", "p1", "u1")
        assert cluster.reserve(fx, "fxnet", "10.1.0.5", owner) is True
        assert cluster.reserve(fx, "fxnet", "10.1.0.5", owner) is False     # 409, ours
        assert len(cluster.list_reservations(fx, node="node1", network="fxnet")) == 1
        assert cluster.release(fx, "fxnet", "10.1.0.5", "c1", "net1") is True
        kube.create_event("default", {"metadata": {"name": "p1.1", "namespace": "default"}, "reason": "AddedInterface",
                                      "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p1"}})
        nad_path = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/sriov-vlan"
        for method, path in (("GET", "/api/v1/nodes"), ("DELETE", "/api/v1/namespaces/default/pods/p1"),
                             ("GET", "/api/v1/namespaces/kube-system/secrets/x"), ("DELETE", nad_path),
                             ("GET", "/api/v1/namespaces/default/events")):
            with pytest.raises(ApiError) as e:
                kube.http.request(method, path)
            assert e.value.status == 403
    finally:
        for cache in (getattr(kube, "nad_cache", None), getattr(kube, "pod_cache", None)):
            if cache is not None:
                cache.stop()
        srv.stop()


# ---------------- the ConfigMap: daemon config and netmeta CNI config ----------------
def test_daemon_config_loads_and_agrees_with_the_daemonset(tmp_path):
    cfg = daemon_cfg(tmp_path)
    assert cfg.kubeconfig == os.path.join("/etc/cni/net.d", "netmeta.d", "netmeta.kubeconfig")
    host, _, port = cfg.http_addr.rpartition(":")
    # every address of the node (Prometheus scrapes it); the kubelet probes the node's loopback
    assert host == "0.0.0.0" and pod_spec()["hostNetwork"] is True
    daemon = container("daemon")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = daemon[probe]["httpGet"]
        assert (get["host"], get["port"], get["path"]) == ("127.0.0.1", int(port), path), probe
    assert {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in daemon["ports"]
    assert daemon["command"][:2] == ["netmeta", "daemon"] and "/etc/netmeta/daemon.yaml" in daemon["command"]
    mounts = {m["mountPath"]: m for m in daemon["volumeMounts"]}
    assert os.path.dirname(cfg.socket_path) in mounts and os.path.dirname(cfg.kubeconfig).startswith("/etc/cni/net.d")
    assert cfg.cni_dir.startswith("/var/lib/cni/") and all(pf["stateDir"].startswith("/var/lib/cni/") for pf in cfg.pfs)
    # delegates run chrooted in the host's / (cni/hostroot.py), writable, new netns propagated
    hr = mounts[SHIPPED_HOST_ROOT]
    assert hr.get("mountPropagation") == "HostToContainer" and not hr.get("readOnly")
    assert {v["name"]: v for v in pod_spec()["volumes"]}[hr["name"]]["hostPath"]["path"] == "/"


def test_shipped_cni_config_is_completed_by_install_and_loads(tmp_path):
    base = json.loads(configmap()["data"]["netmeta.conf"])
    bridge = json.loads(sample_nads()[("kube-system", "bridge-default")]["spec"]["config"])
    cl = install.generate(base, bridge, "/etc/cni/net.d/netmeta.d/netmeta.kubeconfig")
    cfg = meta_config.load(dict(cl["plugins"][0], name=cl["name"], cniVersion=cl["cniVersion"]))
    assert cfg.namespace_isolation is True                      # DESIGN.md: the config we ship turns it on
    assert cfg.global_namespaces and cfg.system_namespaces == {"kube-system"}
    assert cfg.mode == "daemon" and cfg.delegates == (bridge,)
    assert cfg.socket_path == daemon_cfg(tmp_path).socket_path
    assert cl["plugins"][0]["capabilities"] == {"io.kubernetes.cri.pod-annotations": True, "portMappings": True}
    assert install.needs_primary(base)                          # the primary is embedded on the node


# ---------------- the DaemonSet ----------------
def test_install_container_runs_install_with_cleanup_into_host_paths():
    c = container("install")
    assert c in pod_spec()["initContainers"] and c.get("restartPolicy") == "Always"
    assert c["command"][:2] == ["netmeta", "install"]
    a = install.parser().parse_args(c["command"][2:])
    assert a.cleanup_on_exit and a.wait_primary > 0 and a.python == "/usr/bin/python3"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod_spec()["volumes"]}
    for d in (a.bin_dir, a.conf_dir):                          # host paths mounted at the same path
        assert vols[mounts[d]]["hostPath"]["path"] == d
    assert os.path.dirname(a.lib_dir) == a.bin_dir
    assert vols[mounts["/etc/netmeta"]]["configMap"]["name"] == configmap()["metadata"]["name"]
    assert os.path.basename(a.config) in configmap()["data"]
    assert c["startupProbe"]["exec"]["command"] == ["test", "-e", a.ready_file]
    assert os.path.dirname(a.ready_file) in mounts            # readOnlyRootFilesystem: an emptyDir
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"] and not c["securityContext"].get("privileged")
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] > a.wait_primary


def test_daemon_container_privileged_host_network_mounts_probes_resources():
    spec, c = pod_spec(), container("daemon")
    assert spec["hostNetwork"] is True and c["securityContext"]["privileged"] is True
    # delegates chrooted in the host's root see its /proc: they must run in the host's PID namespace
    assert spec.get("hostPID") is True and yaml.safe_load(configmap()["data"]["daemon.yaml"])["hostRoot"]
    assert {"operator": "Exists"} in spec["tolerations"]
    (env,) = [e for e in c["env"] if e["name"] == "NODE_NAME"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    for k in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][k])
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/run/netmeta", "/var/lib/cni", "/var/run/netns", "/sys", "/etc/cni/net.d", "/opt/cni/bin",
                 # the device plugin's world: meta/config.py's defaults (PodResources socket dir,
                 # device checkpoint dir, device-info dir) are where the daemon finds them
                 os.path.dirname(DEFAULT_PODRESOURCES), os.path.dirname(DEFAULT_CHECKPOINT), DEFAULT_DEVINFO_DIR):
        assert vols[mounts[path]["name"]]["hostPath"]["path"] == path, path
    assert mounts[os.path.dirname(DEFAULT_CHECKPOINT)].get("readOnly")
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    assert all(mounts[p].get("readOnly") for p in ("/sys", "/etc/cni/net.d", "/opt/cni/bin"))
    assert "/dev" not in mounts
    assert spec["terminationGracePeriodSeconds"] > daemon_cfg_request_timeout()


def daemon_cfg_request_timeout():
    return yaml.safe_load(configmap()["data"]["daemon.yaml"])["requestTimeout"]


# ---------------- sample NADs and pods through our parsers ----------------
def _sriov_plugins(conf):
    return [p for p in conf.get("plugins", [conf]) if p.get("type") == "sriov"]


@pytest.mark.parametrize("key", sorted(sample_nads()), ids="/".join)
def test_sample_nad_config_loads_through_our_parsers(key):
    nad = sample_nads()[key]
    net = networks.from_nad(nad, "/nonexistent")
    assert net.name == "/".join(key) and net.conf["name"] == key[1]
    assert json.loads(nad["spec"]["config"])["name"] == key[1]       # the config names its NAD
    plugins = net.conf["plugins"] if net.is_list else [net.conf]
    for p in plugins:
        conf = dict(p, name=net.conf["name"], cniVersion=net.conf["cniVersion"]) if net.is_list else p
        if p["type"] == "sriov":
            overrides.policy_of(conf, net.name)                      # the policy itself is valid
            cfg = sriov_config.load(overrides.apply(conf, net.name, None, None))
            assert cfg.master
        if (p.get("ipam") or {}).get("type") == "fixipam":
            assert fixipam_config.load(conf).subnets


def test_sample_vf_networks_are_counted_for_the_node_label(tmp_path):
    """Pods wait for nodes labelled sriov/freeVFAvailable: the daemon must count the PFs the
    VF networks use (and not a PF that pods take whole)."""
    counted = {pf["master"] for pf in daemon_cfg(tmp_path).pfs}
    for nad in sample_nads().values():
        for p in _sriov_plugins(json.loads(nad["spec"]["config"])):
            assert (p["master"] in counted) != bool(p.get("pfOnly")), nad["metadata"]["name"]


@pytest.mark.parametrize("pod", sample_pods(), ids=lambda p: p["metadata"]["name"])
def test_sample_pod_annotations_parse(pod):
    ns, ann = pod["metadata"]["namespace"], pod["metadata"]["annotations"]
    sels = annotations.parse_networks(ann.get(NETWORKS), ns)
    nads = sample_nads()
    assert sels or DEFAULT_NETWORK in ann
    for sel in sels:
        assert (sel.namespace, sel.name) in nads, f"{sel.key} is not a sample NAD"
    if DEFAULT_NETWORK in ann:
        d = annotations.parse_default_network(ann[DEFAULT_NETWORK], "kube-system")
        assert (d.namespace, d.name) in nads
    uses_vf = False
    for sel in sels:
        conf = json.loads(nads[(sel.namespace, sel.name)]["spec"]["config"])
        uses_vf |= any(not p.get("pfOnly") for p in _sriov_plugins(conf))
    for key in (annotations.SRIOV_VLAN_ANNOTATION, annotations.SRIOV_TXRATE_ANNOTATION):
        if key in ann:
            assert annotations.parse_override(ann[key], sels, key)
    assert (pod["spec"].get("nodeSelector") == {FREE_VF_LABEL: "true"}) == uses_vf


@pytest.mark.parametrize("pod", sample_pods(), ids=lambda p: p["metadata"]["name"])
def test_sample_pod_plans_under_the_shipped_policy(pod):
    """The real planner with the shipped CNI config: namespace isolation, the pod's overrides
    inside each network's podOverrides, and every resulting delegate config loads."""
    base = json.loads(configmap()["data"]["netmeta.conf"])
    primary = {"cniVersion": "1.0.0", "name": "cluster", "type": "flannel", "delegate": {}}
    cl = install.generate(base, primary, None)
    cfg = meta_config.load(dict(cl["plugins"][0], name=cl["name"], cniVersion=cl["cniVersion"]))
    nads = sample_nads()

    class NADs:
        def get_nad(self, namespace, name):
            return json.loads(json.dumps(nads[(namespace, name)]))

    req = Request(command="ADD", container_id="c" * 64, netns="/var/run/netns/x", ifname="eth0",
                  config=dict(cl["plugins"][0], name=cl["name"], cniVersion=cl["cniVersion"]))
    ns, ann = pod["metadata"]["namespace"], pod["metadata"]["annotations"]
    atts = Planner(cfg, NADs()).plan(req, ns, ann)
    assert atts[0].default and len(atts) == 1 + len(annotations.parse_networks(ann.get(NETWORKS), ns))
    vlans = {}
    if annotations.SRIOV_VLAN_ANNOTATION in ann:
        sels = annotations.parse_networks(ann.get(NETWORKS), ns)
        o = annotations.parse_override(ann[annotations.SRIOV_VLAN_ANNOTATION], sels)
        vlans = {s.key: annotations.override_for(o, s) for s in sels}
    for att in atts[1:]:
        for p in _sriov_plugins(att.conf):
            assert "podOverrides" not in p
            c = sriov_config.load(p)
            if vlans.get(att.network) is not None:
                assert c.vlan == vlans[att.network]             # the pod's VLAN, within policy
        if (att.conf.get("ipam") or {}).get("type") == "fixipam":
            assert fixipam_config.load(att.conf).subnets
    assert any(vlans.values()) == (annotations.SRIOV_VLAN_ANNOTATION in ann)


def _planner_and_request():
    base = json.loads(configmap()["data"]["netmeta.conf"])
    cl = install.generate(base, {"cniVersion": "1.0.0", "name": "cluster", "type": "flannel"}, None)
    conf = dict(cl["plugins"][0], name=cl["name"], cniVersion=cl["cniVersion"])
    nads = sample_nads()

    class NADs:
        def get_nad(self, namespace, name):
            return json.loads(json.dumps(nads[(namespace, name)]))
    return Planner(meta_config.load(conf), NADs()), Request(command="ADD", container_id="c" * 64,
                                                            netns="/var/run/netns/x", ifname="eth0", config=conf)


def test_shipped_namespace_isolation_shares_default_but_not_kube_system():
    planner, req = _planner_and_request()
    atts = planner.plan(req, "team-a", {NETWORKS: "default/sriov-vlan"})      # a global namespace
    assert atts[1].network == "default/sriov-vlan"
    with pytest.raises(CNIError) as e:
        planner.plan(req, "team-a", {NETWORKS: "kube-system/bridge-default"})
    assert "namespace isolation" in str(e.value)


def test_policy_refuses_what_the_network_does_not_allow():
    """A pod asking for a VLAN outside the sample's podOverrides is refused, naming the setting."""
    conf = json.loads(sample_nads()[("default", "sriov-vlan")]["spec"]["config"])
    with pytest.raises(CNIError) as e:
        overrides.apply(conf, "default/sriov-vlan", 300, None)
    assert "podOverrides.vlan" in str(e.value) or "100-199" in str(e.value)
    fixed = json.loads(sample_nads()[("default", "sriov-fixed-ip")]["spec"]["config"])
    with pytest.raises(CNIError):
        overrides.apply(fixed, "default/sriov-fixed-ip", 150, None)


# ---------------- metrics: Service ----------------
def test_metrics_service_selects_the_daemon_pods_on_the_named_port(tmp_path):
    svc = one("Service", "netmeta-metrics")
    labels = daemonset()["spec"]["template"]["metadata"]["labels"]
    assert svc["metadata"]["namespace"] == daemonset()["metadata"]["namespace"]
    assert svc["spec"]["selector"].items() <= labels.items() and svc["spec"]["clusterIP"] == "None"
    port = int(daemon_cfg(tmp_path).http_addr.rpartition(":")[2])
    (p,) = svc["spec"]["ports"]
    assert p["targetPort"] == "metrics" and p["port"] == port
    assert svc["metadata"]["annotations"]["prometheus.io/port"] == str(port)


# ---------------- least privilege per node: the ValidatingAdmissionPolicy ----------------
# The policy's CEL is evaluated here with cel-python (PyPI), the way the API server evaluates it:
# matchConditions, then variables (bound as `variables`), then every validation; a request is
# admitted when every validation is true. A failing expression counts as a denial
# (failurePolicy: Fail).
NODE_CLAIM = "authentication.kubernetes.io/node-name"


def _policy():
    return one("ValidatingAdmissionPolicy", "netmeta-own-node-only")


def admit(request: dict, obj, old) -> list:
    """[] when admitted, else the messages of the validations that refused."""
    celpy = pytest.importorskip("celpy")
    from celpy import celtypes, json_to_cel
    env = celpy.Environment()

    def ev(expr, act):
        return env.program(env.compile(expr)).evaluate(act)
    spec = _policy()["spec"]
    act = {"request": json_to_cel(request), "object": json_to_cel(obj), "oldObject": json_to_cel(old)}
    if not all(ev(m["expression"], act) for m in spec["matchConditions"]):
        return ["not matched"]
    bound = {}
    for v in spec["variables"]:
        act["variables"] = celtypes.MapType({celtypes.StringType(k): x for k, x in bound.items()})
        try:
            bound[v["name"]] = ev(v["expression"], act)
        except celpy.CELEvalError as e:
            bound[v["name"]] = e
    act["variables"] = celtypes.MapType({celtypes.StringType(k): x for k, x in bound.items()})
    refused = []
    for val in spec["validations"]:
        try:
            ok = ev(val["expression"], act) == celtypes.BoolType(True)
        except (celpy.CELEvalError, TypeError):
            ok = False
        if not ok:
            refused.append(val.get("message") or val["messageExpression"])
    return refused


def _sa_username():
    sa = one("ServiceAccount", "netmeta")
    return f"system:serviceaccount:{sa['metadata']['namespace']}:{sa['metadata']['name']}"


def _request(resource, name, node="node1", op="UPDATE", sub="", user=None):
    extra = {NODE_CLAIM: [node]} if node else {}
    return {"userInfo": {"username": user or _sa_username(), "extra": extra}, "operation": op, "name": name,
            "resource": {"group": "", "version": "v1", "resource": resource}, "subResource": sub}


def _node(name, labels=None, annotations=None):
    meta = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"podCIDR": "10.244.1.0/24"}}


def _pod(node, annotations=None, image="pause"):
    meta = {"name": "p", "namespace": "team-a", "labels": {"app": "web"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "c", "image": image}]}}


def test_admission_policy_lets_a_daemon_publish_its_own_node_only():
    old = _node("node1")
    publish = _node("node1", {FREE_VF_LABEL: "true"}, {"sriov/vfCount": "3", "sriov/vfDetail": "{}"})
    assert admit(_request("nodes", "node1"), publish, old) == []
    assert admit(_request("nodes", "node1"), old, publish) == []                # label removed again
    # the issue's attack: a compromised node relabels every node sriov/freeVFAvailable=true
    refused = admit(_request("nodes", "node2"), _node("node2", {FREE_VF_LABEL: "true"}), _node("node2"))
    assert any("may not change node" in m for m in refused), refused
    for evil in (_node("node1", {"node-role.kubernetes.io/control-plane": ""}),      # another label
                 _node("node1", annotations={"other": "x"}),
                 dict(_node("node1"), spec={"podCIDR": "10.0.0.0/8"})):
        assert admit(_request("nodes", "node1"), evil, old), evil
    assert admit(_request("nodes", "node1", sub="status"), publish, old)
    assert admit(_request("nodes", "node1", op="DELETE"), None, old)


def test_admission_policy_lets_a_daemon_write_network_status_of_its_own_pods_only():
    status = {"k8s.v1.cni.cncf.io/network-status": "[]"}
    assert admit(_request("pods", "p"), _pod("node1", status), _pod("node1")) == []
    assert admit(_request("pods", "p"), _pod("node1", {"k8s.v1.cni.cncf.io/network-status": "[{}]"}),
                 _pod("node1", status)) == []
    refused = admit(_request("pods", "p"), _pod("node2", status), _pod("node2"))
    assert any("only change pods bound to it" in m for m in refused), refused
    assert admit(_request("pods", "p"), _pod("node1", {"k8s.v1.cni.cncf.io/networks": "evil"}), _pod("node1"))
    assert admit(_request("pods", "p"), _pod("node1", status, image="evil"), _pod("node1"))
    assert admit(_request("pods", "p", sub="status"), _pod("node1", status), _pod("node1"))


def test_admission_policy_needs_the_node_claim_and_spares_everyone_else():
    publish = _node("node1", {FREE_VF_LABEL: "true"})
    refused = admit(_request("nodes", "node1", node=None), publish, _node("node1"))
    assert any("no node name" in m for m in refused), refused
    assert admit(_request("nodes", "node2", user="kubernetes-admin"), publish, _node("node2")) == ["not matched"]
    spec = _policy()["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert set(rule["resources"]) == {"nodes", "nodes/status", "pods", "pods/status"}
    assert set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}
    binding = one("ValidatingAdmissionPolicyBinding", "netmeta-own-node-only")
    assert binding["spec"] == {"policyName": _policy()["metadata"]["name"], "validationActions": ["Deny"]}


def test_network_status_is_a_merge_patch_of_that_one_annotation(tmp_path):
    """What the policy allows is all netmeta sends: a merge PATCH of metadata.annotations
    {network-status} (+ metadata.uid as a precondition), never an update of the pod."""
    from meta.kube import api as k8s
    from tests.kubeapi.server import KubeAPIServer
    with KubeAPIServer(tokens={"t": "*"}) as api:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        pod = api.create(dict(_pod("node1"), apiVersion="v1", kind="Pod"))
        kube = k8s.Kube(api.kubeconfig(str(tmp_path / "kc"), token="t"))
        api.clear_log()
        kube.patch_pod_annotations("team-a", "p", {"k8s.v1.cni.cncf.io/network-status": "[]"},
                                   uid=pod["metadata"]["uid"])
        (rec,) = api.find(resource="pods")
        assert rec.method == "PATCH" and rec.content_type == "application/merge-patch+json" and rec.subresource == ""
        assert rec.body == {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"},
                                         "uid": pod["metadata"]["uid"]}}


# ---------------- the image ----------------
def test_image_dependencies_are_pinned_hashed_and_within_pyproject():
    """conf/image-requirements.txt pins every runtime dependency of pyproject.toml to one version
    inside its range, with a sha256 (pip --require-hashes in conf/Containerfile)."""
    import tomllib

    from packaging.requirements import Requirement
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        deps = {Requirement(r).name.lower().replace("_", "-"): Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]}
    with open(os.path.join(CONF, "image-requirements.txt")) as f:
        text = re.sub(r"\\\n", " ", "\n".join(l for l in f.read().splitlines() if not l.startswith("#")))
    pins = {}
    for line in filter(str.strip, text.splitlines()):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)==([0-9][^\s]*)\s+--hash=sha256:([0-9a-f]{64})\s*", line)
        assert m, line
        pins[m[1].lower().replace("_", "-")] = m[2]
    build_only = {"wheel"}     # setuptools' bdist_wheel in the build stage, uninstalled there
    assert set(pins) - build_only == set(deps), (sorted(pins), sorted(deps))
    for name, version in pins.items():
        if name in build_only:
            continue
        assert deps[name].specifier.contains(version), (name, version, str(deps[name].specifier))


def test_containerfile_final_stage_is_slim_and_not_root():
    with open(os.path.join(CONF, "Containerfile")) as f:
        text = f.read()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    final = stages[-1]
    assert final.startswith("scratch\n") and "COPY --from=runtime / /" in final
    runtime = next(s for s in stages if s.split()[1:3] == ["AS", "runtime"])
    assert "apt-get clean" in runtime and "/var/lib/apt/lists/*" in runtime and "gcc" not in runtime
    assert re.search(r"^USER (\d+)", final, re.M) and re.search(r"^USER (\d+)", final, re.M)[1] != "0"
    assert "--require-hashes" in text and "--no-index" in text
    # the DaemonSet says root explicitly where the image's user would not do
    for name in ("install", "daemon"):
        assert container(name)["securityContext"]["runAsUser"] == 0, name

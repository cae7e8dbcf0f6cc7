"""Manifests tests need, written as a cluster would hold them (the NAD CRD as Multus ships it)."""

from __future__ import annotations

import json

NAD_GROUP = "k8s.cni.cncf.io"
NAD_PLURAL = "network-attachment-definitions"


def nad_crd():
    """The NetworkAttachmentDefinition CRD from Multus's deployments/multus-daemonset.yml."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{NAD_PLURAL}.{NAD_GROUP}"},
        "spec": {
            "group": NAD_GROUP, "scope": "Namespaced",
            "names": {"plural": NAD_PLURAL, "singular": "network-attachment-definition",
                      "kind": "NetworkAttachmentDefinition", "shortNames": ["net-attach-def"]},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "description": "NetworkAttachmentDefinition is a CRD schema specified by the "
                                   "Network Plumbing Working Group to express the intent for "
                                   "attaching pods to one or more logical or physical networks.",
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {"description": "NetworkAttachmentDefinition spec defines the "
                                                "desired state of a network attachment",
                                 "type": "object",
                                 "properties": {"config": {"description": "NetworkAttachmentDefinition config is a JSON-formatted CNI configuration",  # noqa: E501
                                                           "type": "string"}}}}}}}]}}


def _meta(name, namespace):
    return {"name": name, "namespace": namespace} if namespace else {"name": name}


def nad(name, namespace=None, config=None, annotations=None):
    """A NetworkAttachmentDefinition; config may be a dict (serialised) or a JSON string.
    Without a namespace the object lands where the request (or `srv.create`: default) puts it."""
    obj = {"apiVersion": f"{NAD_GROUP}/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": _meta(name, namespace), "spec": {}}
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    if config is not None:
        obj["spec"]["config"] = config if isinstance(config, str) else json.dumps(config)
    return obj


def pod(name, namespace=None, node=None, annotations=None, labels=None, image="busybox:1.36"):
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace),
           "spec": {"containers": [{"name": "main", "image": image}]}}
    if node:
        obj["spec"]["nodeName"] = node
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    return obj


def node(name, labels=None, annotations=None):
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    if annotations:
        obj["metadata"]["annotations"] = dict(annotations)
    return obj


def namespace(name, labels=None):
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    return obj

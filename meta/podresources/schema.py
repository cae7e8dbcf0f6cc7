"""The message and service descriptors of meta/podresources/api.proto, built at import time.

Why not generated code: protoc's Python output pins the protobuf runtime to the generator's
version (grpcio-tools 1.85 emits protobuf-7 gencode marked "NO CHECKED-IN PROTOBUF GENCODE",
while the CRI test tier's stubs need protobuf 6), and a code generator in the build would make
every install carry protoc. A descriptor built from this table works with any protobuf >= 4.
tests/test_podresources.py compiles api.proto with protoc and checks this table matches it.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FILE = "netmeta/podresources/v1/api.proto"
PACKAGE = "v1"
SERVICE = "PodResourcesLister"
# message: [(field, number, type, repeated)]; type "string" or a message of this file
MESSAGES = {
    "AllocatableResourcesRequest": [],
    "AllocatableResourcesResponse": [("devices", 1, "ContainerDevices", True)],
    "ListPodResourcesRequest": [],
    "ListPodResourcesResponse": [("pod_resources", 1, "PodResources", True)],
    "PodResources": [("name", 1, "string", False), ("namespace", 2, "string", False),
                     ("containers", 3, "ContainerResources", True)],
    "ContainerResources": [("name", 1, "string", False), ("devices", 2, "ContainerDevices", True)],
    "ContainerDevices": [("resource_name", 1, "string", False), ("device_ids", 2, "string", True)],
    "GetPodResourcesRequest": [("pod_name", 1, "string", False), ("pod_namespace", 2, "string", False)],
    "GetPodResourcesResponse": [("pod_resources", 1, "PodResources", False)],
}
METHODS = [("List", "ListPodResourcesRequest", "ListPodResourcesResponse"),
           ("GetAllocatableResources", "AllocatableResourcesRequest", "AllocatableResourcesResponse"),
           ("Get", "GetPodResourcesRequest", "GetPodResourcesResponse")]


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name=FILE, package=PACKAGE, syntax="proto3")
    for name, fields in MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for fname, number, ftype, repeated in fields:
            f = msg.field.add(name=fname, number=number,
                              label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if ftype == "string":
                f.type = F.TYPE_STRING
            else:
                f.type, f.type_name = F.TYPE_MESSAGE, f".{PACKAGE}.{ftype}"
    svc = fd.service.add(name=SERVICE)
    for name, req, resp in METHODS:
        svc.method.add(name=name, input_type=f".{PACKAGE}.{req}", output_type=f".{PACKAGE}.{resp}")
    return fd


def _classes() -> dict:
    pool = descriptor_pool.DescriptorPool()   # private: never clashes with another "v1" package
    pool.Add(file_descriptor())
    fdesc = pool.FindFileByName(FILE)
    return {n: message_factory.GetMessageClass(fdesc.message_types_by_name[n]) for n in MESSAGES}


M = _classes()


def method_path(name: str) -> str:
    return f"/{PACKAGE}.{SERVICE}/{name}"

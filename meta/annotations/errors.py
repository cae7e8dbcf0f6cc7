"""The error raised for a pod annotation that cannot be honoured, and what every annotation
parser shares (meta/annotations/parse.py, meta/annotations/sriov.py): the size limit it applies first
and the quoting of untrusted text in its messages. They live in cni/annotjson.py, shared with
the stand-alone sriov plugin (delegates never import meta)."""
from __future__ import annotations

from cni.annotjson import MAX_ANNOTATION_BYTES, AnnotationError, fail, quote

__all__ = ["MAX_ANNOTATION_BYTES", "AnnotationError", "fail", "quote"]

"""The error raised for a pod annotation that cannot be honoured, and what every annotation
parser shares (meta/annotations.py, meta/sriovannotations.py): the size limit it applies first
and the quoting of untrusted text in its messages."""
from __future__ import annotations

import json

MAX_ANNOTATION_BYTES = 64 * 1024


class AnnotationError(ValueError):
    """A pod annotation that cannot be honoured; the message names the annotation, the item and
    the rule: `failed to parse <annotation>: <item>: <rule>`."""


def _q(text: str, limit: int = 80) -> str:
    """Quote untrusted text for a message: JSON-escaped (no control characters), truncated."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text)


def _fail(annot: str, where: str, rule: str) -> AnnotationError:
    return AnnotationError(f"failed to parse {annot}: {where}: {rule}")

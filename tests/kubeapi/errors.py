"""API errors as `Status` bodies, shaped like k8s.io/apimachinery/pkg/api/errors.

Every failure the server returns is a `{"kind": "Status", "apiVersion": "v1", "status": "Failure",
...}` object with the same `reason`, `code`, `message` wording and `details` layout kube-apiserver
uses (NewNotFound, NewAlreadyExists, NewConflict, NewInvalid, NewForbidden, NewBadRequest, ...),
so clients that branch on `reason`/`code` or print the message see what a real cluster sends.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client as a Status object."""

    def __init__(self, code, reason, message, details=None, retry_after=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def qualified(resource, group=""):
    """GroupResource.String(): "pods", "network-attachment-definitions.k8s.cni.cncf.io"."""
    return f"{resource}.{group}" if group else resource


def _details(name, group, kind, **extra):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update({k: v for k, v in extra.items() if v})
    return d


def not_found(resource, name, group=""):
    return ApiError(404, "NotFound", f'{qualified(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def no_route():
    """The generic 404 for a path no API serves (e.g. a CRD-backed path before its CRD exists)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource, name, group=""):
    return ApiError(409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


CONFLICT_MODIFIED = ("the object has been modified; please apply your changes to the latest "
                     "version and try again")


def conflict(resource, name, group="", why=CONFLICT_MODIFIED):
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
                    _details(name, group, resource))


class FieldError:
    """One field.Error: `<field>: <Type>: <detail>`."""

    TYPES = {"invalid": ("FieldValueInvalid", "Invalid value"),
             "required": ("FieldValueRequired", "Required value"),
             "forbidden": ("FieldValueForbidden", "Forbidden"),
             "notsupported": ("FieldValueNotSupported", "Unsupported value"),
             "duplicate": ("FieldValueDuplicate", "Duplicate value"),
             "toolong": ("FieldValueTooLong", "Too long")}

    def __init__(self, kind, field, value=None, detail=""):
        self.kind, self.field, self.value, self.detail = kind, field, value, detail

    def body(self):
        reason, text = self.TYPES[self.kind]
        if self.kind in ("invalid", "notsupported", "duplicate"):
            text = f"{text}: {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self):
        return {"reason": self.TYPES[self.kind][0], "message": self.body(), "field": self.field}

    def __str__(self):
        return f"{self.field}: {self.body()}"


class Raw(str):
    """A value printed as-is in a field error (Go's %#v of a non-string, e.g. `0x0`)."""


def _go_value(v):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def invalid(kind, name, errors, group=""):
    """NewInvalid: 422, `Pod "x" is invalid: <err>` or `... is invalid: [<e1>, <e2>]`."""
    text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    qkind = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qkind} "{name}" is invalid: {text}',
                    _details(name, group, kind, causes=[e.cause() for e in errors]))


def unprocessable(server_message):
    """NewGenericServerResponse(422): how kube-apiserver reports a JSON patch that cannot apply."""
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": server_message}]})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(resource, name, group, why):
    subject = qualified(resource, group)
    msg = f'{subject} "{name}" is forbidden: {why}' if name else f"{subject} is forbidden: {why}"
    return ApiError(403, "Forbidden", msg, _details(name, group, resource))


def forbidden_path(why):
    return ApiError(403, "Forbidden", f"forbidden: {why}", {})


def unsupported_media_type(accepted):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: " + ", ".join(accepted))


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


def expired(message):
    return ApiError(410, "Expired", message)


def gone(message):
    return ApiError(410, "Gone", message)


def internal(cause):
    return ApiError(500, "InternalError", f"Internal error occurred: {cause}",
                    {"causes": [{"message": cause}]})


def timeout(message, retry_after=1):
    return ApiError(504, "Timeout", f"Timeout: {message}", {"retryAfterSeconds": retry_after},
                    retry_after=retry_after)


def too_many_requests(retry_after=1):
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                    {"retryAfterSeconds": retry_after}, retry_after=retry_after)


def service_unavailable():
    return ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request",
                    {}, retry_after=1)


def for_code(code, resource="", name="", group="", message=None):
    """The Status kube-apiserver would send for `code` about resource/name (fault injection)."""
    makers = {
        400: lambda: bad_request(message or "injected bad request"),
        401: unauthorized,
        403: lambda: forbidden(resource or "resources", name, group, message or "injected"),
        404: lambda: not_found(resource or "resources", name, group) if name else no_route(),
        405: method_not_allowed,
        409: lambda: conflict(resource or "resources", name, group),
        410: lambda: expired(message or "too old resource version"),
        415: lambda: unsupported_media_type(["application/json"]),
        422: lambda: invalid("Object", name, [FieldError("invalid", "metadata", "", message or "injected")]),
        429: too_many_requests,
        500: lambda: internal(message or "injected fault"),
        503: service_unavailable,
        504: lambda: timeout(message or "request did not complete within the allotted timeout"),
    }
    if code in makers:
        err = makers[code]()
        if message and code in (401, 405, 429, 503):
            err.message = message
        return err
    return ApiError(code, "Unknown", message or
                    f"the server responded with the status code {code} but did not return more information")

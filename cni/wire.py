"""The shim <-> daemon wire format on the unix socket. Deliberately trivial so the shim needs
no json/struct import (it must start in a few ms):

  request  = b"NM1 " + <len(env)> + b" " + <len(stdin)> + b"\n" + env + stdin
             env = b"\0".join(b"KEY=VALUE" ...)   (CNI_* variables and NETMETA_PLUGIN)
  response = <exit code> + b" " + <len(stdout)> + b"\n" + stdout
"""
MAGIC = b"NM1 "
MAX_HEADER = 64
MAX_ENV = 256 * 1024
MAX_STDIN = 4 * 1024 * 1024


def encode_request(env: dict, stdin: bytes) -> bytes:
    blob = b"\0".join(f"{k}={v}".encode() for k, v in env.items())
    return MAGIC + str(len(blob)).encode() + b" " + str(len(stdin)).encode() + b"\n" + blob + stdin


def encode_response(code: int, out: bytes) -> bytes:
    return str(int(code)).encode() + b" " + str(len(out)).encode() + b"\n" + out


def read_exact(recv, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        c = recv(min(65536, n - got))
        if not c:
            raise EOFError("connection closed")
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def read_header(recv) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        c = recv(1)
        if not c:
            raise EOFError("connection closed")
        buf += c
        if len(buf) > MAX_HEADER:
            raise ValueError("header too long")
    return buf[:-1]


def decode_request(recv) -> tuple[dict, bytes]:
    head = read_header(recv)
    if not head.startswith(MAGIC):
        raise ValueError("bad magic")
    a, _, b = head[len(MAGIC):].partition(b" ")
    n_env, n_in = int(a), int(b)
    if not (0 <= n_env <= MAX_ENV and 0 <= n_in <= MAX_STDIN):
        raise ValueError("request too large")
    blob = read_exact(recv, n_env)
    stdin = read_exact(recv, n_in)
    env = {}
    for item in blob.split(b"\0") if blob else []:
        k, sep, v = item.decode("utf-8", "replace").partition("=")
        if not sep:
            raise ValueError("bad env item")
        env[k] = v
    return env, stdin


def decode_response(recv) -> tuple[int, bytes]:
    a, _, b = read_header(recv).partition(b" ")
    code, n = int(a), int(b)
    if not 0 <= n <= MAX_STDIN:
        raise ValueError("response too large")
    return code, read_exact(recv, n)

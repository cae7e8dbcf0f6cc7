"""Run the test API server by hand: `python -m tests.kubeapi --port N --dir D`.

Prints the path of a kubeconfig (admin token) and serves until interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .objects import nad_crd
from .server import KubeAPIServer


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = a random free port")
    ap.add_argument("--dir", required=True, help="where the CA, certificate and kubeconfig go")
    ap.add_argument("--token", default="admin-token", help="the admin bearer token")
    ap.add_argument("--nad-crd", action="store_true", help="install the NetworkAttachmentDefinition CRD")
    args = ap.parse_args(argv)
    os.makedirs(args.dir, exist_ok=True)
    srv = KubeAPIServer(tokens={args.token: "*"}, host=args.host, port=args.port,
                        cert_dir=os.path.join(args.dir, "pki"),
                        objects=[nad_crd()] if args.nad_crd else ())
    srv.start()
    print(srv.kubeconfig(os.path.join(args.dir, "kubeconfig"), token=args.token), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

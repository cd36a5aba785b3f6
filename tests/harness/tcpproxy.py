"""A loopback TCP proxy in front of kube-apiserver, so tests can cut every open connection.

    python tests/harness/tcpproxy.py --listen PORT --target PORT --control PORT

TLS passes through untouched (the apiserver's certificate names 127.0.0.1). The control port
speaks plain HTTP on 127.0.0.1:

    POST /drop                 reset every open connection (watches, keep-alive pools)
    POST /refuse?seconds=N     drop, then reset every new connection for N seconds
    GET  /state                {"connections": n, "refusing": bool, "dropped": total}

cluster.py starts it as process `apiserver-proxy` and writes `<dir>/kubeconfig-proxy`, which
points at it; `harness.cluster.drop_connections(dir, refuse_seconds=0)` calls the control API.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Proxy:
    def __init__(self, listen: int, target: int):
        self.target = target
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.refuse_until = 0.0
        self.dropped = 0
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", listen))
        self.srv.listen(128)

    @staticmethod
    def _reset(s: socket.socket) -> None:
        """Close with RST (SO_LINGER 0): the client sees `connection reset by peer`."""
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def drop(self) -> int:
        with self.lock:
            conns, self.conns = list(self.conns), set()
        for s in conns:
            self._reset(s)
        self.dropped += len(conns) // 2
        return len(conns) // 2

    def serve(self) -> None:
        while True:
            client, _addr = self.srv.accept()
            if time.monotonic() < self.refuse_until:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(src)
                self.conns.discard(dst)
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass


def control_server(proxy: Proxy, port: int) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            with proxy.lock:
                n = len(proxy.conns) // 2
            self._send({"connections": n, "refusing": time.monotonic() < proxy.refuse_until,
                        "dropped": proxy.dropped})

        def do_POST(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            if u.path == "/refuse":
                proxy.refuse_until = time.monotonic() + float((q.get("seconds") or ["5"])[0])
            self._send({"dropped": proxy.drop()})

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    return srv


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--control", type=int, required=True)
    args = ap.parse_args(argv)
    proxy = Proxy(args.listen, args.target)
    ctl = control_server(proxy, args.control)
    threading.Thread(target=ctl.serve_forever, daemon=True).start()
    print(f"proxy 127.0.0.1:{args.listen} -> 127.0.0.1:{args.target}, control 127.0.0.1:{args.control}", flush=True)
    proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

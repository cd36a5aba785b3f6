"""HTTP servers of the simulator: the TLS admission webhook and the debug/control API."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import consts

log = logging.getLogger("simulator.server")


def make_tls(directory: str) -> tuple[str, str, bytes]:
    """A throwaway CA and a serving certificate for 127.0.0.1; returns (cert, key, ca_pem)."""
    os.makedirs(directory, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dkp-simulator-webhook-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    srv_key = key()
    srv = (x509.CertificateBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deckhouse.d8-system.svc")]))
           .issuer_name(ca_name).public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
           .add_extension(x509.SubjectAlternativeName([
               x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
               x509.DNSName("localhost"),
               x509.DNSName("deckhouse.d8-system.svc"),
           ]), critical=False)
           .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
           .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    cert_path = os.path.join(directory, "tls.crt")
    key_path = os.path.join(directory, "tls.key")
    with open(cert_path, "wb") as f:
        f.write(srv.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    with open(os.path.join(directory, "ca.crt"), "wb") as f:
        f.write(ca_pem)
    return cert_path, key_path, ca_pem


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookServer:
    def __init__(self, sim, tls_dir: str, port: int = 0):
        self.sim = sim
        cert, key, self.ca_pem = make_tls(tls_dir)
        handler = self._handler()
        self.httpd = _Server(("127.0.0.1", port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}{consts.WEBHOOK_PATH}"
        self.up_url = f"https://127.0.0.1:{self.port}{consts.UP_WEBHOOK_PATH}"

    def _handler(self):
        sim = self.sim

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug("webhook: " + fmt, *args)

            def do_POST(self):
                path = urllib.parse.urlparse(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if path not in (consts.WEBHOOK_PATH, consts.UP_WEBHOOK_PATH):
                    self._send(404, {"error": "not found"})
                    return
                if sim.deckhouse_down():
                    # Deckhouse is restarting: nobody answers, the apiserver reports
                    # `failed calling webhook` (failurePolicy Fail)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                try:
                    review = json.loads(raw)
                    if path == consts.UP_WEBHOOK_PATH:
                        resp = sim.handle_update_policy_admission(review)
                    else:
                        resp = sim.handle_admission(review)
                    self._send(200, resp)
                except Exception as e:  # pragma: no cover - reported to the apiserver as an error
                    log.exception("webhook failed")
                    self._send(500, {"error": str(e)})

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return H

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, name="webhook", daemon=True).start()
        return self


class DebugServer:
    """Deckhouse's debug HTTP API (queue, module list) plus the simulator's /control API."""

    QUEUE_RE = re.compile(r"^/queue/(list|main)\.(json|yaml|text)$")
    MODULE_LIST_RE = re.compile(r"^/module/list\.(json|yaml|text)$")

    def __init__(self, sim, port: int = 0):
        self.sim = sim
        self.httpd = _Server(("127.0.0.1", port), self._handler())
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _handler(self):
        sim = self.sim
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug("debug: " + fmt, *args)

            def _send(self, code, body, ctype="application/json"):
                data = body if isinstance(body, bytes) else (
                    body.encode() if isinstance(body, str) else (json.dumps(body, indent=1) + "\n").encode())
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self):
                """Deckhouse is restarting: the connection breaks without an answer."""
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                m = outer.QUEUE_RE.match(u.path)
                if m:
                    mode = sim.debug_availability()
                    if mode == "drop":
                        self._drop()
                        return
                    if mode == "503":
                        self._send(503, "Deckhouse is restarting\n", "text/plain")
                        return
                    what, fmt = m.groups()
                    show_empty = (q.get("showEmpty") or ["false"])[0] in ("true", "1", "yes")
                    body = sim.queue_dump(what, fmt, show_empty)
                    ctype = {"json": "application/json", "yaml": "application/yaml"}.get(fmt, "text/plain")
                    self._send(200, body, ctype)
                    return
                m = outer.MODULE_LIST_RE.match(u.path)
                if m:
                    if sim.debug_availability() != "ok":
                        self._drop()
                        return
                    self._send(200, sim.module_list_dump(m.group(1)), "text/plain")
                    return
                if u.path in ("/healthz", "/readyz"):
                    self._send(200, "ok\n", "text/plain")
                    return
                if u.path == "/control/state":
                    self._send(200, sim.control_state())
                    return
                self._send(404, {"error": f"unknown path {u.path}"})

            def do_POST(self):
                u = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not u.path.startswith("/control/"):
                    self._send(404, {"error": f"unknown path {u.path}"})
                    return
                verb = u.path[len("/control/"):].strip("/")
                try:
                    args = json.loads(raw) if raw.strip() else {}
                    result = sim.control(verb, args)
                    self._send(200, {"ok": True, "result": result})
                except KeyError as e:
                    self._send(404, {"ok": False, "error": f"unknown verb or argument: {e}"})
                except (ValueError, TypeError) as e:
                    self._send(400, {"ok": False, "error": str(e)})
                except Exception as e:
                    log.exception("control %s failed", verb)
                    self._send(500, {"ok": False, "error": f"{type(e).__name__}: {e}"})

        return H

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, name="debug-server", daemon=True).start()
        return self

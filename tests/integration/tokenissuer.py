"""A small Docker-registry token server for tests (standard library + openssl).

Serves GET /token?service=S&scope=repository:NAME:ACTIONS (repeatable) and
answers {"token": JWT, "access_token": JWT, "expires_in": N}. The JWT is RS256,
signed with `openssl dgst -sha256 -sign KEY`; its header carries the signing
certificate in x5c, which docker-registry verifies against its rootcertbundle.

Basic credentials are required when `users` is given; a wrong password gets 401.
expired=True issues tokens whose exp is 120 s in the past (beyond the
registry's 60 s leeway). Requests are counted in .requests.
"""
import base64
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_signing_cert(d):
    """A self-signed RSA certificate + key for signing tokens. Returns (cert.pem, key.pem)."""
    key, crt = os.path.join(d, "token.key"), os.path.join(d, "token.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=kiln test token issuer"],
                   check=True, capture_output=True)
    return crt, key


class TokenIssuer:
    def __init__(self, workdir, service="kiln-test", issuer="kiln-issuer", users=None,
                 expires_in=300):
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.users = users or {}
        self.expires_in = expires_in
        self.expired = False
        self.requests = 0
        self.posts = 0
        self.refresh_tokens = {}  # refresh token -> user
        self.cert, self.key = make_signing_cert(workdir)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        issuer_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                issuer_self.requests += 1
                u = urllib.parse.urlparse(self.path)
                if u.path != "/token":
                    self.send_error(404)
                    return
                q = urllib.parse.parse_qs(u.query)
                user = ""
                if issuer_self.users:
                    h = self.headers.get("Authorization", "")
                    ok = False
                    if h.startswith("Basic "):
                        try:
                            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
                            ok = issuer_self.users.get(user) == pw
                        except Exception:
                            ok = False
                    if not ok:
                        body = b'{"details":"invalid credentials"}'
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                tok = issuer_self.sign(user, q.get("scope", []), q.get("service", [""])[0])
                body = json.dumps({"token": tok, "access_token": tok,
                                   "expires_in": issuer_self.expires_in}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                # OAuth2 refresh-token grant (docker's identitytoken)
                issuer_self.requests += 1
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                ok = form.get("grant_type") == ["refresh_token"] and \
                    form.get("refresh_token", [""])[0] in issuer_self.refresh_tokens
                if not ok:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                tok = issuer_self.sign(issuer_self.refresh_tokens[form["refresh_token"][0]],
                                       form.get("scope", []), form.get("service", [""])[0])
                body = json.dumps({"access_token": tok, "expires_in": issuer_self.expires_in}).encode()
                issuer_self.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self):
        return "http://127.0.0.1:%d/token" % self.port

    def registry_config(self):
        """The auth: block for docker-registry's config.yml."""
        return ("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n"
                "    rootcertbundle: %s\n" % (self.realm, self.service, self.issuer, self.cert))

    def sign(self, sub, scopes, service):
        access = []
        for s in scopes:
            for one in s.split(" "):
                parts = one.split(":")
                if len(parts) >= 3:
                    access.append({"type": parts[0], "name": ":".join(parts[1:-1]),
                                   "actions": parts[-1].split(",")})
        now = int(time.time())
        exp = now - 120 if self.expired else now + self.expires_in
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": sub, "aud": service or self.service, "exp": exp,
                  "nbf": now - 300, "iat": now - 300, "jti": "%d-%d" % (now, self.requests),
                  "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode())).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input,
                             check=True, capture_output=True).stdout
        return signing_input.decode() + "." + _b64url(sig)

    def close(self):
        self.httpd.shutdown()

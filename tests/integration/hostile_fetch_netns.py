"""Helper of test_hostile_fetch.py, run inside a network + mount namespace of the test's own
(`unshare -n -m`): a veth interface holds a private address (10.203.0.1), a ULA (fd42::1), a
link-local one (169.254.10.1) and a public-looking one (203.0.113.7, so one of "this host's"
addresses), /etc/hosts (bind-mounted, in this namespace only) names two of them, and an HTTP
server on each records the paths it is asked for. Runs the kiln commands given as JSON on
stdin ({"name": [args…]}) and prints {"name": {"rc", "stderr"}, "log": {addr: [paths]}}."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

KILN, TMP, MARKER = sys.argv[1], sys.argv[2], sys.argv[3]
ADDRS = {"10.203.0.1": socket.AF_INET, "fd42::1": socket.AF_INET6, "169.254.10.1": socket.AF_INET,
         "203.0.113.7": socket.AF_INET}


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


sh("ip", "link", "set", "lo", "up")
sh("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")  # no dummy module everywhere
sh("ip", "link", "set", "d0", "up")
sh("ip", "link", "set", "d1", "up")
for a, fam in ADDRS.items():
    sh("ip", "-6" if fam == socket.AF_INET6 else "-4", "addr", "add",
       a + ("/64" if fam == socket.AF_INET6 else "/24"), "dev", "d0", "nodad")
hosts = os.path.join(TMP, "netns-hosts")
with open(hosts, "w") as f:
    f.write("127.0.0.1 localhost\n10.203.0.1 internal.test\nfd42::1 ula.test\n")
sh("mount", "--bind", hosts, "/etc/hosts")

log = {}


def serve(addr, fam):
    paths = log.setdefault(addr, [])

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            paths.append(self.path)
            body = MARKER.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

    class S(http.server.ThreadingHTTPServer):
        address_family = fam

    s = S((addr, 18080), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()


for a, fam in ADDRS.items():
    serve(a, fam)

out = {}
for name, args in json.load(sys.stdin).items():
    r = subprocess.run([KILN, *args], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, KILN_GIT_TOKEN="", KILN_GIT_CREDENTIALS=""))
    out[name] = {"rc": r.returncode, "stderr": r.stderr}
out["log"] = log
print(json.dumps(out))

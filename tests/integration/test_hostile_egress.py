"""Hostile egress: what a RUN step on the nat network can reach, and the operator's
address allowlist (--allow-address, "policy": {"allow_addresses": [...]}).

Nothing leaves 127.0.0.0/8 or the network namespaces made here: the network cases run
kiln inside a namespace of the test's own, holding a dummy interface with a private
address (10.203.0.1, fd42::1) and listeners on it and on the namespace's 127.0.0.1."""
import json
import os
import subprocess

from kilntest import KILN, T, kiln
from server_common import TOKEN, Server, write_fake_build

# --- the allowlist is checked up front, on every command ---
for cmd in (["build", "."], ["run", "--rootfs", "/", "--", "true"], ["serve"],
            ["worker", "--queue", "http://127.0.0.1:9/q"]):
    r = kiln(cmd[0], "--allow-address", "10.0.0.0/33", *cmd[1:])
    T.check("kiln %s --allow-address 10.0.0.0/33: usage error naming the entry" % cmd[0],
            r.returncode == 2 and '"10.0.0.0/33"' in r.stderr, r.stderr)

cfg = os.path.join(T.tmp, "bad-policy.json")
with open(cfg, "w") as f:
    json.dump({"tokens": [TOKEN], "policy": {"allow_addresses": ["192.168.0.0/16", "mirror.lan"]}}, f)
r = kiln("serve", "--config", cfg, "--root", os.path.join(T.tmp, "bad-root"), "--listen", "127.0.0.1:9",
         timeout=30)
T.check("kiln serve refuses a config whose allow_addresses entry is bad, naming it",
        r.returncode != 0 and "policy.allow_addresses[1]" in r.stderr and "mirror.lan" in r.stderr,
        r.stderr)

# --- the server passes its policy to every build it runs ---
fake = write_fake_build(T.tmp)
argslog = os.path.join(T.tmp, "args.log")
srv = Server(os.path.join(T.tmp, "root"), workers=1, build_command=fake,
             config={"tokens": [TOKEN], "policy": {"allow_addresses": ["10.8.0.0/16:3128"]}},
             extra=["--allow-address", "[fd00::/8]:443"],
             env={"FAKE_SLEEP": "0", "FAKE_ARGSLOG": argslog}).start()
st, body = srv.submit({"source": {"git": "https://git.example.test/acme/app.git", "ref": "main"}})
b = srv.wait_status(body.get("id", ""), ("succeeded", "failed"), timeout=60) if st in (201, 202) else None
args = open(argslog).read() if os.path.exists(argslog) else ""
T.check("server builds run with --server-mode", " --server-mode " in " %s " % args, (st, body, args))
T.check("server builds get the config's and the command line's allowlist",
        "--allow-address=10.8.0.0/16:3128" in args and "--allow-address=[fd00::/8]:443" in args, args)
srv.term()

T.done()

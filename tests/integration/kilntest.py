"""Shared helpers for Python integration tests (standard library only).

Prints TAP lines: ok N - name / not ok N - name. Use:

    from kilntest import T
    T.check("name", condition, "detail on failure")
    T.done()
"""
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

KILN = os.environ.get("KILN_BIN", "")
SRC = os.environ.get("KILN_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CORPORA = os.environ.get("KILN_CORPORA") or os.path.join(os.path.dirname(SRC), "shared", "corpora")


def _mkdtemp_refsafe():
    """A private temp dir whose name is also a valid image reference path
    component (tempfile's names may hold "._" or a trailing "_", which are
    not), since tests put paths into image references."""
    import secrets
    base = tempfile.gettempdir()
    while True:
        d = os.path.join(base, "kiln-it." + secrets.token_hex(5))
        try:
            os.mkdir(d, 0o700)
            return d
        except FileExistsError:
            continue


class Tap:
    def __init__(self):
        self.n = 0
        self.fails = 0
        self.tmp = _mkdtemp_refsafe()
        self.procs = []
        atexit.register(self._cleanup)

    def check(self, name, cond, detail=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.fails += 1
            print(f"not ok {self.n} - {name}", flush=True)
            for line in str(detail).splitlines()[-30:]:
                print(f"#   {line}", flush=True)
        return cond

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print(f"# {line}", flush=True)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def _cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=10)
                except Exception:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.fails else 0)


T = Tap()


def kiln(*args, check=False, input=None, env=None, timeout=600):
    """Runs the kiln binary; returns CompletedProcess with text output."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([KILN, *args], capture_output=True, text=input is None or isinstance(input, str),
                          input=input, env=e, timeout=timeout, check=check)


def write_tree(root, files, links=None):
    """Writes files {path: text, or a dict written as JSON} and symlinks {path: target} under root."""
    for p, v in files.items():
        path = os.path.join(root, p)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(json.dumps(v) if isinstance(v, dict) else v)
    for p, t in (links or {}).items():
        os.makedirs(os.path.dirname(os.path.join(root, p)), exist_ok=True)
        os.symlink(t, os.path.join(root, p))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_registry(extra_config="", tls=None, delete=True):
    """Starts Debian's docker-registry on a free 127.0.0.1 port; returns the port. delete:
    whether it takes DELETE of manifests."""
    port = free_port()
    d = tempfile.mkdtemp(prefix="registry.", dir=T.tmp)
    cfg = os.path.join(d, "config.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n"
                "  delete:\n    enabled: %s\nhttp:\n  addr: 127.0.0.1:%d\n"
                % (d, "true" if delete else "false", port))
        if tls:
            f.write("  tls:\n    certificate: %s\n    key: %s\n" % tls)
        f.write(extra_config)
    T.spawn(["/usr/bin/docker-registry", "serve", cfg], stdout=open(os.path.join(d, "log"), "w"),
            stderr=subprocess.STDOUT)
    if not wait_port(port):
        raise RuntimeError("registry did not start: " + open(os.path.join(d, "log")).read())
    return port

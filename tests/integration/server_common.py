"""Helpers for the kiln serve integration tests: start a real `kiln serve`, call its API."""
import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time

from kilntest import KILN, T, free_port, kiln, wait_port

TOKEN = "test-token-0123456789"

# A stand-in for `kiln job run` used only by the tests of the server's plumbing (queue, logs,
# cancel, crash): a real process that reads the job spec on fd 3 and writes JSON-lines events
# on fd 4 as kiln job run does (a git source: the checkout phase, then the commit on every
# event), sleeps, starts a grandchild in its process group, writes the metadata file and exits
# with $FAKE_EXIT ($FAKE_CHECKOUT_EXIT fails the checkout: error code source_failed).
FAKE_BUILD = r"""#!/bin/sh
# `kiln job run --spec-fd 3 --events-fd 4 …`: the spec on fd 3, JSON-lines events on fd 4
[ "$1 $2" = "job run" ] || { echo "fake: not kiln job run: $*" >&2; exit 2; }
spec=$(cat <&3)
if [ -n "${FAKE_ARGSLOG:-}" ]; then
  echo "$*" >> "$FAKE_ARGSLOG"
  echo "$spec" >> "$FAKE_ARGSLOG"
fi
ctx=$(echo "$spec" | sed -n 's/.*"source":{"[a-z]*":"\([^"]*\)".*/\1/p')
meta=""
while [ $# -gt 0 ]; do
  case "$1" in
    --metadata-file) meta=$2; shift ;;
    --contexts-dir) ctx="$2/$ctx"; shift ;;
  esac
  shift
done
[ -n "${FAKE_RUNLOG:-}" ] && echo "$meta" >> "$FAKE_RUNLOG"
[ -n "${FAKE_SPANLOG:-}" ] && echo "start $meta" >> "$FAKE_SPANLOG"
commit=""
ev() { echo "{\"v\":1$commit,\"event\":$1}" >&4; }
ev '"phase","phase":"validate"'
case "$spec" in
  *'"source":{"git"'*)
    ev '"phase","phase":"checkout"'
    echo "fetching $ctx"
    if [ "${FAKE_CHECKOUT_EXIT:-0}" != 0 ]; then
      ev '"error","code":"source_failed","message":"the fake checkout failed"'
      ev '"result","status":"failed","code":"source_failed"'
      exit 1
    fi
    commit=',"commit":"0123456789abcdef0123456789abcdef01234567"'
    ev '"source","author":"Fake Author","message":"fake: the commit message"' ;;
esac
ev '"phase","phase":"building"'
ev "\"log\",\"text\":\"#1 resolving $ctx\""
i=0
while [ $i -lt ${FAKE_STEPS:-3} ]; do
  i=$((i + 1))
  ev "\"step_start\",\"step\":2,\"name\":\"[1/1] RUN step $i\""
  sleep ${FAKE_SLEEP:-0.2}
done
if [ -n "${FAKE_GRANDCHILD:-}" ]; then
  sleep 300 &
  echo $! > "$FAKE_GRANDCHILD"
  wait
fi
ev '"phase","phase":"pushing"'
ev '"log","text":"#3 pushing layers"'
ev '"phase","phase":"uploading"'
printf '{"containerimage.digest":"sha256:%064d","image.name":"example/app:1","kiln.bytes_pushed":1000}' 1 > "$meta"
[ -n "${FAKE_SPANLOG:-}" ] && echo "end $meta" >> "$FAKE_SPANLOG"
ev "$(printf '"pushed","ref":"example/app:1","digest":"sha256:%064d"' 1)"
ev '"phase","phase":"done"'
if [ "${FAKE_EXIT:-0}" = 0 ]; then
  ev '"result","status":"succeeded"'
else
  ev '"error","code":"build_failed","message":"the fake build failed"'
  ev '"result","status":"failed","code":"build_failed"'
fi
exit ${FAKE_EXIT:-0}
"""


class Server:
    def __init__(self, root, workers=2, config=None, build_command=None, extra=(), env=None):
        self.root = root
        self.port = free_port()
        self.args = [KILN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--root", root,
                     "--workers", str(workers)]
        if config is not None:
            path = os.path.join(root + ".config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            self.args += ["--config", path]
        if build_command:
            self.args += ["--build-command", build_command]
        self.args += list(extra)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.root + ".serve.log", "ab")
        self.proc = T.spawn(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        if not wait_port(self.port):
            raise RuntimeError("kiln serve did not start: " + self.server_log())
        return self

    def server_log(self):
        try:
            return open(self.root + ".serve.log").read()
        except OSError:
            return ""

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def term(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def request(self, method, path, body=None, token=TOKEN, headers=None, raw=False, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = dict(r.getheaders())
        c.close()
        if raw:
            return r.status, data, hdrs
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")

    def upload_dockerfile(self, dockerfile):
        """Uploads a context holding only this Dockerfile; returns its id."""
        st, body = self.request("POST", "/v1/contexts",
                                body=tar_gz({"Dockerfile": dockerfile.encode()}))
        assert st == 201, body
        return body["context"]

    def submit(self, body):
        return self.request("POST", "/v1/builds", body)

    def get(self, bid):
        return self.request("GET", "/v1/builds/" + bid)[1]

    def build_to_end(self, req, token=TOKEN, timeout=300):
        """Submits a build request as token's tenant and follows its log to the end;
        returns (final record, log text), or ({"status": "submit N", ...}, "")."""
        st, body = self.request("POST", "/v1/builds", req, token=token)
        if st != 202:
            return {"status": "submit %d" % st, "body": body}, ""
        bid = body["id"]
        st, log, _ = self.request("GET", "/v1/builds/%s/logs?follow=1" % bid, raw=True,
                                  timeout=timeout, token=token)
        st, rec = self.request("GET", "/v1/builds/" + bid, token=token)
        return rec, log.decode(errors="replace")

    def wait_status(self, bid, statuses, timeout=120):
        end = time.time() + timeout
        b = None
        while time.time() < end:
            b = self.get(bid)
            if b and b.get("status") in statuses:
                return b
            time.sleep(0.1)
        return b

    def metrics(self):
        st, text, _ = self.request("GET", "/metrics", token=None, raw=True)
        out = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def stat_line(log):
    """(unchanged, total, hashed) of a build log's COPY stat cache line, or None."""
    m = re.search(r"(?m)^#\d+ stat cache: (\d+) of (\d+) files unchanged, (\d+) hashed$", log)
    return tuple(int(x) for x in m.groups()) if m else None


def noted_line(log):
    """(noted, kept) of the stat cache line of a fresh checkout or an upload, or None."""
    m = re.search(r"(?m)^stat cache: (\d+) files noted, (\d+) kept their hash$", log)
    return tuple(int(x) for x in m.groups()) if m else None


def tar_gz(files):
    """A tar.gz (bytes) holding files: {name: bytes, or (a tarfile type,) such
    as (tarfile.FIFOTYPE,) for an empty special entry}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                ti.type = data[0]
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def busybox_layout(dirpath):
    """A busybox base image imported as an OCI layout at dirpath/base; returns the layout
    directory, or None when the import failed (a failed check is recorded)."""
    rootfs = os.path.join(dirpath, "busybox")
    for d in ("bin", "etc", "tmp", "root"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    for a in ("sh", "echo", "cat", "sleep", "true", "ls"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    layout = os.path.join(dirpath, "base")
    r = kiln("import", rootfs, "-t", "busybox:1", "--output", "type=oci,dest=" + layout)
    return layout if T.check("busybox base image", r.returncode == 0, r.stderr) else None


def real_build_server(extra=(), tenants=None):
    """For tests of real builds: a busybox base layout, a local docker-registry and a
    `kiln serve` (2 workers) whose builds may push there. (layout, "127.0.0.1:PORT",
    Server), or T.done() when the base image cannot be made. tenants: a function of the
    registry's "127.0.0.1:PORT" giving the config's "tenants" (TOKEN stays tenant default)."""
    from kilntest import start_registry
    layout = busybox_layout(T.tmp)
    if layout is None:
        T.done()
    reg = "127.0.0.1:%d" % start_registry()
    # the registry and the base layout are the test's own, on loopback and under T.tmp:
    # the server's policy opens them to its (server-mode) builds
    policy = {"allow_addresses": ["127.0.0.0/8"], "oci_dirs": [layout]}
    config = {"tokens": [TOKEN], "policy": policy}
    if tenants:
        config["tenants"] = tenants(reg)
    srv = Server(os.path.join(T.tmp, "root"), workers=2, config=config,
                 extra=["--kiln-root=" + os.path.join(T.tmp, "kiln-root"),
                        "--build-option=--insecure-registry=" + reg, *extra]).start()
    return layout, reg, srv


def write_fake_build(dirpath):
    path = os.path.join(dirpath, "fake-build.sh")
    with open(path, "w") as f:
        f.write(FAKE_BUILD)
    os.chmod(path, 0o755)
    return path


def processes(*argv):
    """Pids of the processes whose command line starts with argv (strings)."""
    want = [a.encode() for a in argv]
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if f.read().split(b"\0")[:len(want)] == want:
                        out.append(int(pid))
            except OSError:
                pass
    return out


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def fauxqs_queues(prefix):
    """fauxqs with queues PREFIX-jobs and PREFIX-events and a bucket PREFIX; returns
    (endpoint, jobs URL, events URL, kiln's AWS env). Reports and ends the test when fauxqs
    does not start. The caller has tests/aws on sys.path."""
    import awslib
    try:
        endpoint = awslib.start_fauxqs(T, free_port())
    except Exception as e:  # noqa: BLE001
        T.check("fauxqs starts", False, str(e))
        T.done()
    jobs = awslib.sqs_create_queue(endpoint, prefix + "-jobs", {"VisibilityTimeout": "30"})
    events = awslib.sqs_create_queue(endpoint, prefix + "-events")
    awslib.s3_create_bucket(endpoint, prefix)
    return endpoint, jobs, events, awslib.kiln_env(endpoint, HOME=T.tmp)


def start_fake_worker(name, jobs, events, aws_env, fake, env, extra=()):
    """A `kiln worker` on root T.tmp/NAME running the stand-in build (more arguments in
    extra), log in T.tmp/NAME.log."""
    e = dict(os.environ)
    e.update(aws_env)
    e.update(env)
    log = open(os.path.join(T.tmp, name + ".log"), "w")
    return T.spawn([KILN, "worker", "--queue", jobs, "--events-queue", events, "--root",
                    os.path.join(T.tmp, name), "--build-command", fake, "--visibility-timeout", "3",
                    "--wait-seconds", "1", "--drain-timeout", "30", *extra],
                   stdout=log, stderr=subprocess.STDOUT, env=e)

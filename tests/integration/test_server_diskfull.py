"""kiln serve on a full disk: the server's root and its kiln root are a small tmpfs (mounted in
a private mount namespace of this test). An upload that does not fit answers 507 (not 413) and
leaves nothing in contexts/; a real build whose RUN step fills the disk ends failed with reason
no_space, from the job's typed error (code no_space: the engine saw the step's filesystem full),
never from its log; once space is back the server works as before."""
import os
import subprocess
import sys

if os.environ.get("KILN_DISKFULL_NS") != "1":
    # Re-run inside a private mount namespace: the tmpfs is gone with the test's processes.
    os.environ["KILN_DISKFULL_NS"] = "1"
    try:
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable]
                  + sys.argv)
    except OSError as e:
        print("1..0 # SKIP unshare: %s" % e)
        sys.exit(0)

from kilntest import T  # noqa: E402
from server_common import TOKEN, Server, busybox_layout, tar_gz  # noqa: E402

layout = busybox_layout(T.tmp)
if layout is None:
    T.done()
root = os.path.join(T.tmp, "root")
os.makedirs(root)
r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", root],
                   capture_output=True, text=True)
if r.returncode != 0:
    T.skip("disk-full tests", "cannot mount a tmpfs: " + r.stderr.strip())
    T.done()
srv = Server(root, workers=1, config={"tokens": [TOKEN], "policy": {"oci_dirs": [layout]}},
             extra=["--kiln-root=" + os.path.join(root, "kiln")]).start()


def leftovers():
    """Entries of contexts/ that are not finished contexts (temp dirs, partial uploads)."""
    d = os.path.join(root, "contexts")
    return sorted(n for n in os.listdir(d) if not n.startswith("ctx-")) if os.path.isdir(d) \
        else []


def contexts():
    d = os.path.join(root, "contexts")
    return sorted(n for n in os.listdir(d) if n.startswith("ctx-"))


filler = os.path.join(root, "filler")


def fill(leave):
    """Fills the tmpfs, then gives back `leave` bytes."""
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\xa5" * 1048576)
                f.flush()
        except OSError:
            pass
    try:
        with open(filler, "ab") as f:
            while True:
                f.write(b"\xa5" * 4096)
                f.flush()
    except OSError:
        pass
    size = os.path.getsize(filler)
    os.truncate(filler, max(0, size - leave))


# A build whose step runs out of space fails, naming the lack of space.
hog = "FROM oci:%s:1\nRUN /bin/busybox dd if=/dev/zero of=/hog bs=65536\n" % layout
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": hog.encode()}))
T.check("an upload with space answers 201", st == 201, body)
ctx = body["context"] if st == 201 else ""
st, b = srv.submit({"source": {"context": ctx}})
T.check("a build is accepted", st in (200, 201, 202), b)
b = srv.wait_status(b["id"], ["succeeded", "failed", "canceled"], timeout=300) if st < 300 else {}
T.check("a build that fills the disk ends failed",
        b.get("status") == "failed", b)
T.check("its reason is no_space", b.get("reason") == "no_space", b)
T.check("... from the job's typed error: code no_space",
        ((b.get("result") or {}).get("events") or {}).get("error", {}).get("code") == "no_space", b)
T.check("its error names the lack of space", "no space left" in (b.get("error") or ""), b)
T.check("its scratch directory is gone",
        os.listdir(os.path.join(root, "builds")) == [] if os.path.isdir(
            os.path.join(root, "builds")) else True, os.listdir(root))

# The tarball fits but its contents do not: unpacking fails -> 507, nothing left.
before = contexts()
fill(256 * 1024)
bomb = tar_gz({"Dockerfile": b"FROM scratch\n", "big": b"\0" * (8 * 1048576)})
st, body = srv.request("POST", "/v1/contexts", body=bomb)
T.check("a context whose files do not fit answers 507", st == 507, (st, body))
T.check("the 507 says the server has no space",
        "no space left on the server" in str(body), body)
T.check("no half-unpacked context is left", leftovers() == [] and contexts() == before,
        (leftovers(), contexts()))

# The upload itself does not fit: 507, and the partial upload is removed.
big = tar_gz({"noise": os.urandom(2 * 1048576)})
st, body = srv.request("POST", "/v1/contexts", body=big)
T.check("an upload that does not fit answers 507 (not 413)", st == 507, (st, body))
T.check("no partial upload is left", leftovers() == [] and contexts() == before,
        (leftovers(), contexts()))

# Space back: the server works as before.
os.unlink(filler)
st, body = srv.request("POST", "/v1/contexts", body=tar_gz({"Dockerfile": b"FROM scratch\n"}))
T.check("with space back an upload answers 201", st == 201, body)
st, _ = srv.request("GET", "/v1/builds/" + b.get("id", "x"))
T.check("the server still answers", st == 200, st)
srv.term()
T.done()

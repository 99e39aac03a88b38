#!/usr/bin/env python3
"""kiln job run: a JSON job spec in (--spec FILE or --spec-fd), JSON-lines events out
(--events-fd): phases, steps with their cache hits, outputs with digests, pushes, errors with a
code, the result last; every event carries the spec's build id, tenant, repo (credentials and
query cut), commit, branch and trigger. A bad spec runs nothing."""
import fcntl
import glob
import json
import os
import socket
import subprocess
import threading

from gitserve import serve_git
from kilntest import KILN, T, kiln, start_registry
from server_common import busybox_layout, processes

ctx = os.path.join(T.tmp, "ctx")
os.makedirs(ctx)
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY a /a\n")
with open(os.path.join(ctx, "a"), "w") as f:
    f.write("hello\n")
bad_ctx = os.path.join(T.tmp, "bad")
os.makedirs(bad_ctx)
with open(os.path.join(bad_ctx, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY missing /m\n")
ROOT = os.path.join(T.tmp, "root")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IDS = {"build_id": "b-job1", "tenant": "acme", "repo": "https://tok3n@example.com/acme/app.git?x=1",
       "commit": COMMIT, "branch": "main", "trigger": "webhook"}


def run(spec, root=ROOT, extra=()):
    """Runs a spec through --spec-fd/--events-fd; returns (rc, events, stderr)."""
    sr, sw = os.pipe()
    er, ew = os.pipe()
    os.write(sw, json.dumps(spec).encode())
    os.close(sw)
    p = subprocess.Popen([KILN, "job", "run", "--spec-fd", str(sr), "--events-fd", str(ew),
                          "--root", root, *extra], pass_fds=(sr, ew), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    os.close(sr)
    os.close(ew)
    with os.fdopen(er) as f:
        lines = f.read().splitlines()
    out, err = p.communicate(timeout=600)
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"unparsable": line})
    return p.returncode, events, err + out


def kinds(events, kind):
    return [e for e in events if e.get("event") == kind]


out1 = os.path.join(T.tmp, "out1")
rc, ev, err = run(dict(IDS, source={"dir": ctx}, outputs=[{"type": "oci", "dest": out1}]))
T.check("a good spec: exit 0", rc == 0, err)
T.check("every line is a JSON event", ev and all("event" in e for e in ev), ev)
T.check("every event carries the ids (repo without credentials or query)",
        all(e.get("build_id") == "b-job1" and e.get("tenant") == "acme" and e.get("commit") == COMMIT
            and e.get("branch") == "main" and e.get("trigger") == "webhook"
            and e.get("repo") == "https://example.com/acme/app.git" for e in ev), ev[:2])
T.check("no event holds the repo's credential", all("tok3n" not in json.dumps(e) for e in ev))
T.check("phases validate, building, exporting, done in order",
        [e["phase"] for e in kinds(ev, "phase")] == ["validate", "building", "exporting", "done"], ev)
starts = kinds(ev, "step_start")
ends = kinds(ev, "step_end")
T.check("step_start and step_end for each step",
        [e["step"] for e in starts] == [1, 2] and [e["step"] for e in ends] == [1, 2]
        and starts[1].get("name", "").endswith("COPY a /a"), ev)
T.check("a cold build: the COPY step is no cache hit", ends and ends[-1].get("cache_hit") is False, ends)
with open(os.path.join(out1, "index.json")) as f:
    digest = json.load(f)["manifests"][0]["digest"]
outs = kinds(ev, "output")
T.check("an output event with the image digest",
        len(outs) == 1 and outs[0].get("type") == "oci" and outs[0].get("dest") == out1
        and outs[0].get("digest") == digest, outs)
T.check("the result is last: succeeded with the digest",
        ev[-1].get("event") == "result" and ev[-1].get("status") == "succeeded"
        and ev[-1].get("digest") == digest, ev[-1])

# again: the step cache is hit, and said so
out2 = os.path.join(T.tmp, "out2")
rc, ev, err = run(dict(IDS, source={"dir": ctx}, outputs=[{"type": "oci", "dest": out2}]))
ends = kinds(ev, "step_end")
T.check("a warm build: the COPY step is a cache hit", rc == 0 and ends and ends[-1].get("cache_hit") is True,
        ends)

# a push: a pushed event with the reference and the digest
port = start_registry()
ref = f"127.0.0.1:{port}/acme/app:1"
rc, ev, err = run(dict(IDS, source={"dir": ctx}, outputs=[{"type": "registry", "name": ref}]),
                  extra=(f"--build-option=--insecure-registry=127.0.0.1:{port}",))
pushed = kinds(ev, "pushed")
T.check("a push: a pushed event naming the reference and digest",
        rc == 0 and len(pushed) == 1 and pushed[0].get("ref") == ref
        and pushed[0].get("digest") == ev[-1].get("digest") and pushed[0]["digest"].startswith("sha256:"),
        f"{err}\n{pushed}")

# a bad spec: an error event with its code naming the field, and nothing runs
bad_root = os.path.join(T.tmp, "bad-root")
for name, spec, want in [
    ("a bad output type", dict(IDS, source={"dir": ctx}, outputs=[{"type": "bogus"}]),
     "field 'outputs[0].type': unknown output type 'bogus'"),
    ("a push without a name", dict(IDS, source={"dir": ctx}, outputs=[{"type": "registry"}]),
     "field 'outputs[0]': a push needs a name"),
    ("a credential in the source URL", dict(IDS, source={"git": "https://u:p4ss@127.0.0.1:1/r"}),
     "field 'secrets': secret values are not accepted here"),
    ("an unknown field", dict(IDS, source={"dir": ctx}, colour="red"), "field 'colour': unknown field"),
    ("a secret without a source", dict(IDS, source={"dir": ctx}, secrets=["tok"]),
     "field 'secrets.tok': has no source"),
]:
    rc, ev, err = run(spec, root=bad_root)
    errs = kinds(ev, "error")
    T.check(f"{name}: exit 2, error code invalid_spec naming the field",
            rc == 2 and len(errs) == 1 and errs[0].get("code") == "invalid_spec"
            and want in errs[0].get("message", ""), f"{rc} {ev} {err}")
    T.check(f"{name}: no step ran, the root was not made, the result failed last",
            not kinds(ev, "step_start") and not os.path.exists(bad_root)
            and ev[-1].get("event") == "result" and ev[-1].get("status") == "failed"
            and ev[-1].get("code") == "invalid_spec", ev)
    T.check(f"{name}: no secret value in any event", all("p4ss" not in json.dumps(e) for e in ev), ev)

rc, ev, err = run(dict(IDS, source={"dir": ctx}, outputs=[{"type": "oci", "dest": "/tmp/x"}]),
                  root=bad_root, extra=("--untrusted",))
T.check("--untrusted: a directory source is refused, nothing runs",
        rc == 2 and "field 'source.dir': unknown field" in json.dumps(kinds(ev, "error"))
        and not kinds(ev, "step_start") and not os.path.exists(bad_root), ev)

# hostile specs under --untrusted (a tenant's): nothing of the host is named, read or written
marker_dir = os.path.join(T.tmp, "host-marker")
os.makedirs(marker_dir)
marker = os.path.join(marker_dir, "secret.txt")
with open(marker, "w") as f:
    f.write("HOST-MARKER\n")
before = os.stat(marker)
GIT = {"git": "https://127.0.0.1:1/acme/app.git"}
for name, spec, want in [
    ("a directory source", dict(source={"dir": marker_dir}), "field 'source.dir': unknown field"),
    ("a secret read from a host file", dict(source=GIT, secrets=[{"id": "s", "src": marker}]),
     "field 'secrets.s': a secret's file or variable is only for local builds"),
    ("a secret read from the environment", dict(source=GIT, secrets=[{"id": "s", "env": "HOME"}]),
     "field 'secrets.s': a secret's file or variable is only for local builds"),
    ("an absolute output dest", dict(source=GIT, outputs=[{"type": "local", "dest": marker_dir}]),
     "field 'outputs[0].dest': '%s' is absolute" % marker_dir),
    ("an escaping output dest", dict(source=GIT, outputs=[{"type": "tar", "dest": "../../" + marker}]),
     "has a '..' segment"),
    ("a Dockerfile outside the source", dict(source=GIT, dockerfile=marker),
     "field 'dockerfile': must be a path relative to the source"),
    ("a Dockerfile up the tree", dict(source=GIT, dockerfile="../../etc/passwd"),
     "field 'dockerfile': must not contain '..'"),
    ("a plan file", dict(source=GIT, plan=marker), "field 'plan': a plan file is only for local builds"),
]:
    rc, ev, err = run(dict(IDS, **spec), root=bad_root, extra=("--untrusted",))
    errs = kinds(ev, "error")
    T.check(f"--untrusted, {name}: exit 2, invalid_spec naming the field",
            rc == 2 and len(errs) == 1 and errs[0].get("code") == "invalid_spec"
            and want in errs[0].get("message", ""), f"{rc} {ev} {err}")
    after = os.stat(marker)
    T.check(f"--untrusted, {name}: nothing ran, the marker is untouched and in no event",
            not kinds(ev, "step_start") and not os.path.exists(bad_root)
            and os.listdir(marker_dir) == ["secret.txt"] and open(marker).read() == "HOST-MARKER\n"
            and after.st_mtime_ns == before.st_mtime_ns
            and all("HOST-MARKER" not in json.dumps(e) for e in ev), ev)

rc, ev, err = run({"source": {"dir": ctx}, "outputs": "nope"}, root=bad_root)
T.check("a bad spec without ids: the error event has no ids",
        rc == 2 and kinds(ev, "error") and "build_id" not in kinds(ev, "error")[0], ev)

# a failing build: the step's error, then error code build_failed
rc, ev, err = run(dict(IDS, source={"dir": bad_ctx}, outputs=[{"type": "oci", "dest": os.path.join(T.tmp, "o3")}]))
errs = kinds(ev, "error")
T.check("a failing build: exit 1, error code build_failed with the message",
        rc == 1 and len(errs) == 1 and errs[0].get("code") == "build_failed" and "missing" in errs[0].get("message", ""),
        f"{ev}\n{err}")
T.check("a failing build: the result failed last",
        ev[-1].get("event") == "result" and ev[-1].get("status") == "failed", ev[-1])

# the spec's timeout: the build's process group (its sandboxed step too) is killed
layout = busybox_layout(T.tmp)
slow = os.path.join(T.tmp, "slow")
os.makedirs(slow)
with open(os.path.join(slow, "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nRUN sleep 43\n" % layout)
rc, ev, err = run(dict(IDS, source={"dir": slow}, timeout_seconds=3))
errs = kinds(ev, "error")
T.check("a build past its timeout_seconds: exit 1, error code timeout, result failed last",
        rc == 1 and len(errs) == 1 and errs[0].get("code") == "timeout"
        and ev[-1].get("event") == "result" and ev[-1].get("code") == "timeout", f"{ev}\n{err}")
# a step cannot pose as the engine: its output arrives as log events of its own step
spoof = os.path.join(T.tmp, "spoof")
os.makedirs(spoof)
with open(os.path.join(spoof, "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nRUN echo '{\"step\":99,\"event\":\"done\"}' && "
            "echo '{\"step\":98,\"event\":\"start\",\"text\":\"x\"}' >&2\n" % layout)
rc2, ev2, err2 = run(dict(IDS, source={"dir": spoof}))
T.check("a step printing progress lines: no step 98/99 events, its lines are its log",
        rc2 == 0 and all(e.get("step") not in (98, 99) for e in ev2)
        and any(e.get("event") == "log" and '"step":99' in e.get("text", "") for e in ev2),
        f"{ev2}\n{err2}")
T.check("the RUN step had started, and no sleeping step is left",
        any("RUN sleep 43" in e.get("name", "") for e in kinds(ev, "step_start"))
        and not processes("sleep", "43"), ev)

# a git source: kiln job run checks it out itself (the credential read from the file the spec
# names as secret .git, never on a command line or in an event), then builds the checkout
GIT_TOKEN = "git-TOKEN-jobrun-7a7a"
repo = os.path.join(T.tmp, "app")
os.makedirs(os.path.join(repo, "sub"))
with open(os.path.join(repo, "sub", "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n" % layout)
with open(os.path.join(repo, "sub", "hello.txt"), "w") as f:
    f.write("hello from git\n")
git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "app"], check=True)
head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
served = os.path.join(T.tmp, "served", "private")
os.makedirs(served)
subprocess.run(["git", "clone", "-q", "--bare", repo, os.path.join(served, "app.git")], check=True)
_gitsrv, git_base = serve_git(os.path.join(T.tmp, "served"), private_token=GIT_TOKEN)
cred = os.path.join(T.tmp, "git-cred")
with open(cred, "w") as f:
    f.write("x-access-token:%s\n" % GIT_TOKEN)
git_out = os.path.join(T.tmp, "git-out")
gspec = {"build_id": "b-jobgit", "source": {"git": git_base + "/private/app.git", "ref": "main",
                                            "subdir": "sub"},
         "secrets": [{"id": ".git", "src": cred}], "outputs": [{"type": "oci", "dest": git_out}]}
rc, ev, err = run(gspec, extra=("--build-option=--allow-http-git",
                                "--build-option=--oci-dir=" + layout))
T.check("a git source: kiln job run checks it out and builds it (exit 0, result succeeded)",
        rc == 0 and ev and ev[-1].get("status") == "succeeded"
        and os.path.exists(os.path.join(git_out, "index.json")), f"{ev}\n{err}")
T.check("... phases validate, checkout, building, exporting, done",
        [e["phase"] for e in kinds(ev, "phase")] ==
        ["validate", "checkout", "building", "exporting", "done"], kinds(ev, "phase"))
after_checkout = ev[[i for i, e in enumerate(ev) if e.get("phase") == "checkout"][0] + 1:]
T.check("... every event after the checkout carries the full commit and the repository",
        after_checkout and all(e.get("commit") == head and
                               e.get("repo") == git_base + "/private/app.git" for e in after_checkout),
        after_checkout[:3])
T.check("... the step read the file of the checked-out subdirectory",
        any("hello from git" in e.get("text", "") for e in kinds(ev, "log")), kinds(ev, "log"))
T.check("... the checkout went into the repository's kept work tree",
        any(e.get("text", "").startswith("checkout: the kept work tree updated in place (2 files")
            for e in kinds(ev, "log")), kinds(ev, "log"))
T.check("... the token is in no event and not on stderr",
        GIT_TOKEN not in json.dumps(ev) and GIT_TOKEN not in err, err)
rc, ev, err = run(dict(gspec, secrets=[]), extra=("--build-option=--allow-http-git",))
errs = kinds(ev, "error")
T.check("a private git source without its credential: error code source_failed naming the "
        "repository, no step ran",
        rc == 1 and len(errs) == 1 and errs[0].get("code") == "source_failed"
        and "private/app.git" in errs[0].get("message", "") and not kinds(ev, "step_start"),
        f"{ev}\n{err}")

# hostile: the repository's Dockerfile asks for the credential as a build secret; it is the
# checkout's alone (dropped from the spec before the build), so the step finds none
subprocess.run(git + ["checkout", "-q", "-b", "steal"], check=True)
with open(os.path.join(repo, "sub", "Dockerfile"), "w") as f:
    f.write("FROM oci:%s:1\nRUN --mount=type=secret,id=.git,required=true "
            "cat /run/secrets/.git\n" % layout)
subprocess.run(git + ["commit", "-q", "-am", "steal"], check=True)
subprocess.run(git + ["push", "-q", os.path.join(served, "app.git"), "steal"], check=True)
rc, ev, err = run(dict(gspec, source=dict(gspec["source"], ref="steal")),
                  extra=("--build-option=--allow-http-git", "--build-option=--oci-dir=" + layout))
errs = kinds(ev, "error")
T.check("a Dockerfile mounting the git credential as secret .git: the checkout worked, the step "
        "finds no such secret (error build_failed naming it)",
        rc == 1 and "checkout" in [e.get("phase") for e in kinds(ev, "phase")] and len(errs) == 1
        and errs[0].get("code") == "build_failed"
        and "secret .git not provided" in errs[0].get("message", ""), f"{ev}\n{err}")
T.check("... and the token is in no event and not on stderr",
        GIT_TOKEN not in json.dumps(ev) and GIT_TOKEN not in err, err)

# kiln build -f of a git source: the same checkout (the -f file is the repository's, found
# inside the checkout); a Dockerfile that is a link to a host file is not followed out
public = os.path.join(T.tmp, "served", "pub.git")
subprocess.run(git + ["checkout", "-q", "main"], check=True)
subprocess.run(["git", "clone", "-q", "--bare", repo, public], check=True)
cli_out = os.path.join(T.tmp, "cli-out")
r = kiln("build", "--root", ROOT, "--allow-http-git", "-f", "Dockerfile", "-o",
         "type=oci,dest=" + cli_out, git_base + "/pub.git#main:sub")
T.check("kiln build -f Dockerfile URL#main:sub checks the repository out and builds it",
        r.returncode == 0 and ("at commit " + head) in r.stderr
        and os.path.exists(os.path.join(cli_out, "index.json")), r.stderr[-2000:])
host_marker = os.path.join(T.tmp, "host-dockerfile")
with open(host_marker, "w") as f:
    f.write("FROM scratch\nLABEL HOST-MARKER=1\n")
subprocess.run(git + ["checkout", "-q", "-b", "link"], check=True)
os.unlink(os.path.join(repo, "sub", "Dockerfile"))
os.symlink(host_marker, os.path.join(repo, "sub", "Dockerfile"))
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "link"], check=True)
subprocess.run(git + ["push", "-q", public, "link"], check=True)
r = kiln("build", "--root", ROOT, "--allow-http-git", "-f", "Dockerfile", "-o",
         "type=oci,dest=" + os.path.join(T.tmp, "cli-out2"), git_base + "/pub.git#link:sub")
T.check("hostile: a repository whose Dockerfile links to a host file: refused naming the "
        "Dockerfile, the host file not read",
        r.returncode != 0 and "reading the Dockerfile" in r.stderr and "HOST-MARKER" not in r.stderr
        and not os.path.exists(os.path.join(T.tmp, "cli-out2", "index.json")), r.stderr[-2000:])
# kept work tree: two builds of one repository, the second with one file changed and one
# deleted, check the commit out into the same tree in place (an unchanged file keeps its
# inode); a tree left modified (an untracked file, a tracked file replaced by a link to a host
# file) is reset; a build finding the tree held by another checks out afresh; kiln gc removes
# a tree unused for --max-age
krepo = os.path.join(T.tmp, "keptrepo")
os.makedirs(os.path.join(krepo, "kept"))
for name, text in (("Dockerfile", "FROM oci:%s:1\nCOPY . /ctx/\nRUN ls /ctx && cat /ctx/*.txt\n"
                    % layout), ("a.txt", "A-one\n"), ("b.txt", "B-same\n"), ("c.txt", "C-gone\n")):
    with open(os.path.join(krepo, "kept", name), "w") as f:
        f.write(text)
kgit = ["git", "-C", krepo, "-c", "user.name=t", "-c", "user.email=t@example.test"]
subprocess.run(["git", "init", "-q", "-b", "main", krepo], check=True)
subprocess.run(kgit + ["add", "-A"], check=True)
subprocess.run(kgit + ["commit", "-q", "-m", "one"], check=True)
kbare = os.path.join(T.tmp, "served", "kept.git")
subprocess.run(["git", "clone", "-q", "--bare", krepo, kbare], check=True)
kspec = {"build_id": "b-kept", "source": {"git": git_base + "/kept.git", "ref": "main",
                                          "subdir": "kept"},
         "outputs": [{"type": "oci", "dest": os.path.join(T.tmp, "kept-out")}]}
kextra = ("--build-option=--allow-http-git", "--build-option=--oci-dir=" + layout)
KEPT_NOTE = "checkout: the kept work tree updated in place"


def logtext(events):
    return "\n".join(e.get("text", "") for e in kinds(events, "log"))


rc, ev, err = run(kspec, extra=kextra)
trees = [d for d in glob.glob(os.path.join(ROOT, "build", "worktrees", "*"))
         if os.path.isdir(os.path.join(d, "tree", "kept"))]
ktree = os.path.join(trees[0], "tree", "kept") if len(trees) == 1 else "/nonexistent"
ino_b = os.stat(os.path.join(ktree, "b.txt")).st_ino if trees else None
T.check("kept tree: the first build of a repository checks it out into ROOT/build/worktrees/HASH",
        rc == 0 and len(trees) == 1 and KEPT_NOTE in logtext(ev) and "C-gone" in logtext(ev),
        f"{trees}\n{ev}\n{err}")
with open(os.path.join(krepo, "kept", "a.txt"), "w") as f:
    f.write("A-two\n")
os.unlink(os.path.join(krepo, "kept", "c.txt"))
subprocess.run(kgit + ["commit", "-q", "-am", "two"], check=True)
subprocess.run(kgit + ["push", "-q", kbare, "main"], check=True)
# what a previous step could have left: an untracked file and a tracked file now a link
# to a host file
kmarker = os.path.join(T.tmp, "kept-host-marker")
with open(kmarker, "w") as f:
    f.write("KEPT-HOST-MARKER\n")
with open(os.path.join(ktree, "junk.txt"), "w") as f:
    f.write("JUNK-LEFT\n")
if trees:
    os.unlink(os.path.join(ktree, "Dockerfile"))
    os.symlink(kmarker, os.path.join(ktree, "Dockerfile"))
rc, ev, err = run(dict(kspec, build_id="b-kept2"), extra=kextra)
log = logtext(ev)
T.check("... the second build (one file changed, one deleted, junk and a link planted): the "
        "image has the change, neither the deleted file nor the junk",
        rc == 0 and KEPT_NOTE in log and "A-two" in log and "A-one" not in log
        and "C-gone" not in log and "c.txt" not in log and "JUNK-LEFT" not in log
        and "junk.txt" not in log, f"{ev}\n{err}")
T.check("... in the same tree, reset: an unchanged file kept its inode, the planted link is the "
        "repository's Dockerfile again, the host file neither read nor written",
        trees and os.stat(os.path.join(ktree, "b.txt")).st_ino == ino_b
        and not os.path.islink(os.path.join(ktree, "Dockerfile"))
        and not os.path.exists(os.path.join(ktree, "c.txt"))
        and not os.path.exists(os.path.join(ktree, "junk.txt"))
        and "KEPT-HOST-MARKER" not in log + err
        and open(kmarker).read() == "KEPT-HOST-MARKER\n", f"{ev}\n{err}")
# another build holding the tree: this one checks out afresh and still builds
klock = open(os.path.join(trees[0] if trees else T.tmp, "lock"), "a")
fcntl.flock(klock, fcntl.LOCK_EX | fcntl.LOCK_NB)
rc, ev, err = run(dict(kspec, build_id="b-kept3"), extra=kextra)
log = logtext(ev)
T.check("... a build while the kept tree is held checks out afresh (the commit's 3 files noted) "
        "and builds it",
        rc == 0 and KEPT_NOTE not in log and "stat cache: 3 files noted" in log
        and ev[-1].get("status") == "succeeded", f"{ev}\n{err}")
gcroot = os.path.join(T.tmp, "gc-root")
os.makedirs(gcroot)
old = os.path.getmtime(trees[0]) - 3 * 3600 if trees else 0
for p in [os.path.join(trees[0], n) for n in os.listdir(trees[0])] + trees[:1] if trees else ():
    os.utime(p, (old, old))
r = kiln("gc", "--root", gcroot, "--kiln-root", ROOT, "--max-age", "1")
T.check("... kiln gc --max-age keeps a tree a build holds", r.returncode == 0
        and os.path.isdir(ktree), r.stderr)
klock.close()
r = kiln("gc", "--root", gcroot, "--kiln-root", ROOT, "--max-age", "1")
T.check("... and removes it once unused for longer (moved away under its lock: nothing left)",
        r.returncode == 0 and trees and not os.path.exists(trees[0])
        and not [n for n in os.listdir(os.path.dirname(trees[0])) if n.startswith(".gc-")],
        (r.stdout + r.stderr, os.listdir(os.path.dirname(trees[0])) if trees else None))

# a git server that accepts and then never answers (loopback): the checkout's own timeout
# (source.timeout_seconds) ends it, not the job's wall time; error source_failed naming it
hang = socket.socket()
hang.bind(("127.0.0.1", 0))
hang.listen(8)
held = []


def hold():
    while True:
        try:
            c, _ = hang.accept()
        except OSError:
            return
        held.append(c)  # read nothing, answer nothing


threading.Thread(target=hold, daemon=True).start()
hurl = "http://127.0.0.1:%d/hangs/app.git" % hang.getsockname()[1]
rc, ev, err = run({"build_id": "b-hang", "source": {"git": hurl, "timeout_seconds": 2},
                   "limits": {"wall_time": 600}, "outputs": [{"type": "oci", "dest": git_out}]},
                  extra=("--build-option=--allow-http-git",))
errs = kinds(ev, "error")
T.check("a git server that never answers: the checkout stops at source.timeout_seconds, error "
        "source_failed naming the timeout and the repository, no step ran",
        rc == 1 and len(errs) == 1 and errs[0].get("code") == "source_failed"
        and "no answer within the checkout's timeout (2 s)" in errs[0].get("message", "")
        and "source.timeout_seconds is 2" in errs[0].get("message", "")
        and "hangs/app.git" in errs[0].get("message", "") and not kinds(ev, "step_start")
        and ev[-1].get("status") == "failed", f"{ev}\n{err}")
T.check("... the server saw the checkout connect (the timeout is the read's, not a refusal)",
        len(held) >= 1, held)
hang.close()
for c in held:
    c.close()
T.done()

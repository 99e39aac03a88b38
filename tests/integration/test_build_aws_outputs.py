"""kiln build --output type=s3 and --notify, against fauxqs (S3 + SQS).

A Dockerfile build whose final filesystem is a static site is uploaded to S3
and read back with awscli; the completion event read back from SQS names the
build, its status, the S3 output and timings; a failing build sends a
"failed" event with the error; a notification target that is down is
reported while the build still succeeds and its metadata records it."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T, kiln  # noqa: E402
import awslib  # noqa: E402
import kilnbuild  # noqa: E402


def aws_cli(endpoint, *args):
    env = dict(os.environ, **awslib.kiln_env(endpoint))
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(["/usr/bin/aws", "--endpoint-url", endpoint, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def main():
    direct, _proxy, env = awslib.start_services(T)
    root = os.path.join(T.tmp, "root")
    base = kilnbuild.make_base(root)
    awslib.s3_create_bucket(direct, "sites")
    q = awslib.sqs_create_queue(direct, "build-events")

    ctx = os.path.join(T.tmp, "ctx")
    write(os.path.join(ctx, "site", "index.html"), "<h1>hello from kiln</h1>\n")
    write(os.path.join(ctx, "site", "assets", "app.3f2a9c1b.js"), "console.log(1);\n")
    write(os.path.join(ctx, "Dockerfile"),
          f"FROM {base} AS build\nCOPY site/ /src/\nRUN echo built > /src/built.txt\n"
          "FROM scratch\nCOPY --from=build /src/ /\n")
    meta = os.path.join(T.tmp, "meta.json")
    r = kiln("build", "--root", root, "--progress", "plain", "--build-id", "b-test-1",
             "-o", "type=s3,dest=s3://sites/www", "--notify", "sqs://" + q,
             "--metadata-file", meta, ctx, env=env)
    T.check("build with --output type=s3 succeeds", r.returncode == 0, r.stderr)

    back = os.path.join(T.tmp, "back")
    s = aws_cli(direct, "s3", "sync", "--only-show-errors", "s3://sites/www", back)
    files = {}
    for dp, _dn, fn in os.walk(back):
        for n in fn:
            rel = os.path.relpath(os.path.join(dp, n), back)
            with open(os.path.join(dp, n)) as f:
                files[rel] = f.read()
    T.check("the built site is in S3 (awscli reads it back)",
            files.get("index.html") == "<h1>hello from kiln</h1>\n" and
            files.get("built.txt") == "built\n" and
            files.get(os.path.join("assets", "app.3f2a9c1b.js")) == "console.log(1);\n",
            (s.stderr, sorted(files)))
    h = aws_cli(direct, "s3api", "head-object", "--bucket", "sites", "--key", "www/index.html")
    ctype = json.loads(h.stdout).get("ContentType", "") if h.returncode == 0 else ""
    T.check("uploaded HTML has Content-Type text/html", ctype.startswith("text/html"), h.stdout)

    msgs = awslib.sqs_receive(direct, q)
    ev = json.loads(msgs[0]["Body"]) if len(msgs) == 1 else {}
    T.check("one completion event on the queue", len(msgs) == 1, msgs)
    T.check("event: build id and status succeeded",
            ev.get("build_id") == "b-test-1" and ev.get("status") == "succeeded", ev)
    s3outs = ev.get("outputs", {}).get("s3", [])
    T.check("event: the S3 output with its URL and file count",
            len(s3outs) == 1 and s3outs[0].get("url") == "s3://sites/www" and
            s3outs[0].get("files") == 3, ev.get("outputs"))
    tm = ev.get("timings", {})
    T.check("event: build, outputs and total timings",
            all(isinstance(tm.get(k), int) for k in ("build_ms", "outputs_ms", "total_ms")), tm)
    try:
        md = json.load(open(meta))
    except (OSError, ValueError):
        md = {}
    T.check("metadata file holds the same event and the notify result",
            md.get("kiln.event") == ev and md.get("kiln.notify", [{}])[0].get("ok") is True,
            md)

    # a second deploy of the same site uploads nothing new
    r = kiln("build", "--root", root, "--progress", "plain", "-o", "type=s3,dest=s3://sites/www",
             ctx, env=env)
    T.check("redeploy of an unchanged site uploads nothing",
            r.returncode == 0 and "0 uploaded" in r.stderr, r.stderr[-800:])

    # failing build: a failed event with the error, nothing uploaded
    write(os.path.join(ctx, "Dockerfile.fail"), f"FROM {base}\nRUN exit 3\n")
    r = kiln("build", "--root", root, "--progress", "plain", "-f",
             os.path.join(ctx, "Dockerfile.fail"), "--build-id", "b-test-2",
             "-o", "type=s3,dest=s3://sites/failed", "--notify", "sqs://" + q, ctx, env=env)
    msgs = awslib.sqs_receive(direct, q)
    ev = json.loads(msgs[0]["Body"]) if len(msgs) == 1 else {}
    T.check("failing build exits 1 and sends a failed event with the error",
            r.returncode == 1 and ev.get("build_id") == "b-test-2" and
            ev.get("status") == "failed" and "3" in ev.get("error", ""), (r.returncode, ev))
    ls = aws_cli(direct, "s3", "ls", "s3://sites/failed/")
    T.check("a failed build uploads nothing", ls.stdout.strip() == "", ls.stdout)

    # a notification target that does not exist: reported, build still good
    meta2 = os.path.join(T.tmp, "meta2.json")
    bad = direct + "/000000000000/no-such-queue"
    r = kiln("build", "--root", root, "--progress", "plain", "-o",
             "type=oci,dest=" + os.path.join(T.tmp, "out"), "--notify", "sqs://" + bad,
             "--metadata-file", meta2, ctx, env=env)
    try:
        md = json.load(open(meta2))
    except (OSError, ValueError):
        md = {}
    res = md.get("kiln.notify", [{}])[0]
    T.check("a failing notification does not fail the build",
            r.returncode == 0 and "warning" in r.stderr and "no-such-queue" in r.stderr,
            r.stderr[-800:])
    T.check("metadata records the failed notification and the succeeded event",
            res.get("ok") is False and md.get("kiln.event", {}).get("status") == "succeeded", md)
    T.check("bad --notify target is a usage error",
            kiln("build", "--notify", "http://x", ctx).returncode == 2)
    T.done()


main()

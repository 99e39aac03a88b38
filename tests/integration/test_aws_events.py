"""kiln notify: build events to SQS (JSON protocol) and SNS, against fauxqs.

Reads messages back with a stdlib SQS JSON client: the event parses and holds
every field; message attributes; SNS -> SQS subscription delivery; FIFO queue
group and deduplication ids; retries; a failing target is reported while the
other targets still get the event."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T, kiln  # noqa: E402
import awslib  # noqa: E402

EVENT = {
    "build_id": "b-20261125-0001",
    "status": "failed",
    "source": {"repo": "https://git.example.test/acme/web.git", "commit": "0123456789abcdef"},
    "outputs": {
        "images": [{"ref": "registry.test/acme/web:1", "digest": "sha256:" + "ab" * 32}],
        "s3": ["s3://site/www/"],
        "functions": [{"path": "s3://site/functions/fn.zip", "sha256": "cd" * 32}],
    },
    "timings": {"clone_ms": 120, "plan_ms": 3, "build_ms": 45210, "push_ms": 800},
    "error": "step 3/7 exited 2: npm run build",
}


def write_event(name, ev):
    p = os.path.join(T.tmp, name)
    with open(p, "w") as f:
        json.dump(ev, f)
    return p


def main():
    direct, proxy, env = awslib.start_services(T)
    evp = write_event("event.json", EVENT)

    # ---- standard queue
    q = awslib.sqs_create_queue(direct, "builds")
    r = kiln("notify", "--notify", "sqs://" + q, "--event", evp, env=env)
    T.check("notify sqs:// succeeds and prints the message id",
            r.returncode == 0 and r.stdout.strip().startswith("sqs://"), r.stderr)
    msgs = awslib.sqs_receive(direct, q)
    ok = len(msgs) == 1
    body = json.loads(msgs[0]["Body"]) if ok else {}
    T.check("the event read back from SQS parses and holds every field", body == EVENT, msgs)
    attrs = msgs[0].get("MessageAttributes", {}) if ok else {}
    T.check("message attributes kiln-build-id and kiln-status",
            attrs.get("kiln-build-id", {}).get("StringValue") == EVENT["build_id"] and
            attrs.get("kiln-status", {}).get("StringValue") == "failed", attrs)
    sends = [x for x in proxy.requests() if x["method"] == "POST"]
    h = sends[0]["headers"] if sends else {}
    T.check("SQS JSON protocol headers and SigV4 scope",
            h.get("x-amz-target") == "AmazonSQS.SendMessage" and
            h.get("content-type") == "application/x-amz-json-1.0" and
            "/us-east-1/sqs/aws4_request" in h.get("authorization", ""), h)

    # ---- SNS -> SQS subscription
    sub_q = awslib.sqs_create_queue(direct, "from-topic")
    topic = awslib.sns_create_topic(direct, "build-events")
    awslib.sns_subscribe_sqs(direct, topic, awslib.sqs_queue_arn(direct, sub_q))
    r = kiln("notify", "--notify", "sns://" + topic, "--event", evp, env=env)
    msgs = awslib.sqs_receive(direct, sub_q)
    env_ok = len(msgs) == 1
    inner = {}
    if env_ok:
        envelope = json.loads(msgs[0]["Body"])
        inner = json.loads(envelope.get("Message", "{}"))
        env_ok = envelope.get("TopicArn") == topic and \
            envelope.get("MessageAttributes", {}).get("kiln-status", {}).get("Value") == "failed"
    T.check("SNS publish is delivered to the subscribed queue", r.returncode == 0 and env_ok,
            (r.stderr, msgs))
    T.check("the event inside the SNS envelope holds every field", inner == EVENT, inner)
    pubs = [x for x in proxy.requests() if "/sns/aws4_request" in
            x["headers"].get("authorization", "")]
    T.check("SNS Publish is signed for sns", len(pubs) == 1, len(pubs))

    # ---- FIFO queue: group id + deduplication
    fq = awslib.sqs_create_queue(direct, "builds.fifo", {"FifoQueue": "true"})
    r1 = kiln("notify", "--notify", "sqs://" + fq, "--event", evp, env=env)
    r2 = kiln("notify", "--notify", "sqs://" + fq, "--event", evp, env=env)
    ev2 = dict(EVENT, build_id="b-20261125-0002", status="succeeded", error=None)
    r3 = kiln("notify", "--notify", "sqs://" + fq, "--event", write_event("e2.json", ev2), env=env)
    msgs = awslib.sqs_receive(direct, fq, wait=2)
    groups = {m.get("Attributes", {}).get("MessageGroupId") for m in msgs}
    T.check("FIFO queue: sent with MessageGroupId = source repo",
            r1.returncode == 0 and r3.returncode == 0 and groups == {EVENT["source"]["repo"]},
            (r1.stderr, r3.stderr, groups))
    T.check("FIFO queue: the same event twice is deduplicated, in order",
            r2.returncode == 0 and [json.loads(m["Body"])["build_id"] for m in msgs] ==
            ["b-20261125-0001", "b-20261125-0002"], [m.get("Body", "")[:40] for m in msgs])

    # ---- retries
    proxy.clear()
    proxy.add_rule(lambda m, p, hd: hd.get("x-amz-target") == "AmazonSQS.SendMessage", 500,
                   '{"__type":"InternalFailure","message":"boom"}', times=1)
    r = kiln("notify", "--notify", "sqs://" + q, "--event", evp, env=env)
    tries = [x for x in proxy.requests() if x["headers"].get("x-amz-target")]
    T.check("a 500 from SQS is retried", r.returncode == 0 and len(tries) == 2 and
            len(awslib.sqs_receive(direct, q)) == 1, (r.stderr, len(tries)))

    # ---- a failing target is reported; the others still get the event
    proxy.clear()
    bad = q.rsplit("/", 1)[0] + "/no-such-queue"
    r = kiln("notify", "--notify", "sqs://" + bad, "--notify", "sqs://" + q, "--event", evp,
             env=env)
    T.check("unknown queue: exit 1, error names the queue and the SQS code",
            r.returncode == 1 and "no-such-queue" in r.stderr and "HTTP 400" in r.stderr and
            "QueueDoesNotExist" in r.stderr, r.stderr)
    T.check("the good target still got the event", len(awslib.sqs_receive(direct, q)) == 1)
    r = kiln("notify", "--notify", "sqs://" + q, "--event", evp,
             env=dict(env, AWS_SECRET_ACCESS_KEY=""))
    T.check("no credentials: notify fails naming the sources",
            r.returncode == 1 and "no AWS credentials" in r.stderr, r.stderr)
    r = kiln("notify", "--notify", "kafka://x", "--event", evp, env=env)
    T.check("a bad target is a usage error", r.returncode == 2 and "sqs://" in r.stderr, r.stderr)
    T.done()


main()

"""Queue mode builds a job at most once per accepted message (fauxqs SQS + S3): a worker
that dies after the build finished and before it deleted the SQS message (held there by a
test hook, then kill -9) does not cause a second build when the message comes back to
another worker (another root, so only the shared done marker in the context store can tell
it); the job's result stands and the message goes. The workers run the stand-in build."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "aws"))
from kilntest import T  # noqa: E402
from server_common import (TOKEN, Server, fauxqs_queues, start_fake_worker,  # noqa: E402
                           write_fake_build)
import awslib  # noqa: E402

fake = write_fake_build(T.tmp)
endpoint, jobs, events, aws_env = fauxqs_queues("kiln-once")
runlog = os.path.join(T.tmp, "runs")


def start_worker(name, **env):
    return start_fake_worker(name, jobs, events, aws_env, fake,
                             dict({"FAKE_RUNLOG": runlog, "FAKE_SLEEP": "0.1", "FAKE_STEPS": "2"},
                                  **env))


def worker_log(name):
    try:
        return open(os.path.join(T.tmp, name + ".log")).read()
    except OSError:
        return ""


def wait_for(cond, limit=120):
    """Polls cond until it holds (bounded so a broken build cannot hang the suite)."""
    end = time.time() + limit
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def runs():
    try:
        return open(runlog).read().split()
    except OSError:
        return []


srv = Server(os.path.join(T.tmp, "root"), config={"tokens": [TOKEN]},
             extra=["--queue", jobs, "--events-queue", events,
                    "--context-store", "s3://kiln-once/staged/"], env=aws_env).start()
w1 = start_worker("w1", KILN_WORKER_TEST_PAUSE_BEFORE_DELETE="1")
st, body = srv.submit({"source": {"git": "https://git.example.test/acme/once.git"}})
T.check("the job is queued", st == 202, body)
bid = body["id"] if st == 202 else "x"
b = srv.wait_status(bid, ["succeeded", "failed", "canceled"], timeout=120)
T.check("the first worker built it: succeeded", b and b.get("status") == "succeeded", b)
T.check("the first worker holds before the delete",
        wait_for(lambda: "pausing before delete" in worker_log("w1")), worker_log("w1"))
T.check("it was built once so far", len(runs()) == 1, runs())
w1.send_signal(signal.SIGKILL)
w1.wait(timeout=10)

# The message comes back (its visibility ran out) to a worker on another root.
w2 = start_worker("w2")
T.check("the second worker answers the redelivered message from the done marker",
        wait_for(lambda: "was built already (done marker); not built again" in worker_log("w2")),
        worker_log("w2"))
T.check("the job was not built again", len(runs()) == 1, runs())
b = srv.get(bid)
T.check("its result stands (succeeded, with its image)",
        b and b.get("status") == "succeeded" and "result" in b, b)


def queue_empty():
    r = awslib._json_call(endpoint, "GetQueueAttributes",
                          {"QueueUrl": jobs, "AttributeNames": ["All"]})
    a = r.get("Attributes", {})
    return a.get("ApproximateNumberOfMessages") == "0" and \
        a.get("ApproximateNumberOfMessagesNotVisible") == "0"


T.check("the message is deleted", wait_for(queue_empty, 60),
        awslib._json_call(endpoint, "GetQueueAttributes",
                          {"QueueUrl": jobs, "AttributeNames": ["All"]}))

# A second job on the surviving worker is built normally (the marker is per job id).
st, body = srv.submit({"source": {"git": "https://git.example.test/acme/two.git"}})
b2 = srv.wait_status(body["id"], ["succeeded", "failed", "canceled"], timeout=120) \
    if st == 202 else None
T.check("another job is built once as usual",
        b2 and b2.get("status") == "succeeded" and len(runs()) == 2, (b2, runs()))
w2.send_signal(signal.SIGTERM)
w2.wait(timeout=60)
srv.term()
T.done()

"""Helpers for kiln's AWS tests (standard library only).

- start_fauxqs(): the fauxqs emulator (S3, SQS, SNS) on a free 127.0.0.1 port
- Proxy: a recording, fault-injecting HTTP proxy in front of it, to see the
  headers kiln sends (Cache-Control, checksums, SigV4) and to answer 403/500
- sqs_*/sns_*: a small client for the JSON (SQS) and query (SNS) protocols
- kiln_env(): the environment for running kiln against an endpoint
"""
import http.client
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from xml.etree import ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))

TEST_KEY_ID = "AKIDKILNTEST0000"
TEST_SECRET = "kilnTestSecret/DoNotPrint+0123456789abcdef"


def setup():
    """Runs setup.sh; returns (node, fauxqs_dir)."""
    out = subprocess.run(["bash", os.path.join(HERE, "setup.sh")], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError("tests/aws/setup.sh failed: " + out.stderr[-2000:])
    vals = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return vals["NODE"], vals["FAUXQS_DIR"]


def start_fauxqs(tap, port):
    """Starts fauxqs on 127.0.0.1:port under tap (killed at exit)."""
    from kilntest import wait_port
    node, d = setup()
    log = open(os.path.join(tap.tmp, "fauxqs.log"), "w")
    tap.spawn([node, os.path.join(HERE, "serve.mjs"), d, str(port)], stdout=log,
              stderr=subprocess.STDOUT)
    if not wait_port(port, 30):
        raise RuntimeError("fauxqs did not start: " + open(log.name).read())
    return "http://127.0.0.1:%d" % port


def start_services(tap):
    """fauxqs + a recording proxy in front of it; returns (fauxqs URL, proxy,
    kiln env pointing at the proxy). Reports and ends the test if fauxqs fails."""
    from kilntest import free_port
    port = free_port()
    try:
        direct = start_fauxqs(tap, port)
    except Exception as e:  # noqa: BLE001
        tap.check("fauxqs starts", False, str(e))
        tap.done()
    proxy = Proxy(port)
    return direct, proxy, kiln_env(proxy.url, HOME=tap.tmp)


def kiln_env(endpoint, **extra):
    env = {
        "AWS_ACCESS_KEY_ID": TEST_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "3",
    }
    env.update(extra)
    return env


class Proxy:
    """Forwards every request to `upstream`, records it, and can answer
    instead: rules are (predicate(method, path, headers), status, body, times)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.log = []  # dicts: method, path, headers (lower-case keys), status, size
        self.rules = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                entry = {"method": self.command, "path": self.path, "headers": hdrs,
                         "size": len(body)}
                canned = None
                with proxy.lock:
                    for r in proxy.rules:
                        if r[3] != 0 and r[0](self.command, self.path, hdrs):
                            if r[3] > 0:
                                r[3] -= 1
                            canned = r
                            break
                if canned:
                    status, data = canned[1], canned[2].encode()
                    ctype = "application/xml"
                    rh = []
                else:
                    c = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=120)
                    fwd = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                    c.request(self.command, self.path, body=body, headers=fwd)
                    r = c.getresponse()
                    data = r.read()
                    status = r.status
                    ctype = r.getheader("Content-Type") or ""
                    rh = [(k, v) for k, v in r.getheaders()
                          if k.lower() in ("etag", "x-amz-request-id", "last-modified")]
                    c.close()
                entry["status"] = status
                with proxy.lock:
                    proxy.log.append(entry)
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in rh:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_rule(self, pred, status, body, times=-1):
        with self.lock:
            self.rules.append([pred, status, body, times])

    def clear(self):
        with self.lock:
            self.log = []
            self.rules = []

    def requests(self):
        with self.lock:
            return list(self.log)


def s3_error(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s"
            "</Message><RequestId>TEST</RequestId></Error>" % (code, message))


def _json_call(endpoint, target, payload):
    req = urllib.request.Request(endpoint + "/", data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.0",
                                          "X-Amz-Target": "AmazonSQS." + target})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def sqs_create_queue(endpoint, name, attributes=None):
    p = {"QueueName": name}
    if attributes:
        p["Attributes"] = attributes
    return _json_call(endpoint, "CreateQueue", p)["QueueUrl"]


def sqs_receive(endpoint, queue_url, wait=2, max_messages=10):
    """Receives (and deletes) up to max_messages; returns the message dicts."""
    out = []
    end = time.time() + wait
    while time.time() < end and len(out) < max_messages:
        r = _json_call(endpoint, "ReceiveMessage",
                       {"QueueUrl": queue_url, "MaxNumberOfMessages": 10,
                        "MessageAttributeNames": ["All"], "AttributeNames": ["All"]})
        for m in r.get("Messages", []):
            out.append(m)
            _json_call(endpoint, "DeleteMessage",
                       {"QueueUrl": queue_url, "ReceiptHandle": m["ReceiptHandle"]})
        if not r.get("Messages"):
            time.sleep(0.1)
    return out


def sqs_queue_arn(endpoint, queue_url):
    r = _json_call(endpoint, "GetQueueAttributes",
                   {"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]})
    return r["Attributes"]["QueueArn"]


def _sns_call(endpoint, params):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(endpoint + "/", data=data, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def _xml_get(xml, tag):
    """Text of the first element named tag (in any namespace) of an XML answer, or None."""
    for el in ElementTree.fromstring(xml).iter():
        if el.tag.rsplit("}", 1)[-1] == tag:
            return el.text or ""
    return None


def sns_create_topic(endpoint, name, attributes=None):
    p = {"Action": "CreateTopic", "Name": name}
    for i, (k, v) in enumerate((attributes or {}).items(), 1):
        p["Attributes.entry.%d.key" % i] = k
        p["Attributes.entry.%d.value" % i] = v
    return _xml_get(_sns_call(endpoint, p), "TopicArn")


def sns_subscribe_sqs(endpoint, topic_arn, queue_arn, raw=False):
    p = {"Action": "Subscribe", "TopicArn": topic_arn, "Protocol": "sqs", "Endpoint": queue_arn}
    if raw:
        p["Attributes.entry.1.key"] = "RawMessageDelivery"
        p["Attributes.entry.1.value"] = "true"
    return _xml_get(_sns_call(endpoint, p), "SubscriptionArn")


def s3_create_bucket(endpoint, bucket):
    req = urllib.request.Request("%s/%s" % (endpoint, bucket), method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def s3_put(endpoint, bucket, key, data):
    """PUTs data (bytes) at bucket/key, unsigned (fauxqs accepts it)."""
    req = urllib.request.Request("%s/%s/%s" % (endpoint, bucket, key), data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()

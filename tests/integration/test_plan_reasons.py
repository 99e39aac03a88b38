#!/usr/bin/env python3
"""kiln plan explains every choice it makes, in the source's terms: for a fixture of each
provider (Node, Python, Go, JVM, Rust, Deno, PHP, Ruby, static) and framework, `kiln plan --explain` gives every choice it prints a reason, no reason
is a provider's placeholder ("the node provider's install step"), and the reasons name the file
that decided (which file set the Node version, why this start command)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kilntest import SRC, T, kiln  # noqa: E402

DETECT = os.path.join(SRC, "tests", "fixtures", "detect")
ENV = {k: "" for k in ("KILN_NODE_VERSION", "KILN_PYTHON_VERSION", "KILN_GO_VERSION", "KILN_IMAGE_PREFIX",
                       "KILN_PROVIDER", "KILN_START_CMD", "KILN_BUILD_CMD", "KILN_INSTALL_CMD", "KILN_OUTPUTS",
                       "KILN_PORT")}
# The placeholders detection falls back to when a provider left a choice unexplained.
PLACEHOLDERS = ("provider's install step", "provider's build step", "provider's way to start it",
                "the build image's", "project makes")
# fixture, -o spec or None, {choice: words its reason must hold}
CASES = [
    ("node-nvmrc", None, {"version": ".nvmrc"}),
    ("node-engines-range", None, {"version": "package.json engines.node"}),
    ("node-default-lts", None, {"version": "the current LTS line"}),
    ("node-npm-lockfile", None, {"start command": "package.json scripts.start", "package manager": "package-lock.json"}),
    ("node-next-standalone", None, {"start command": "next.config.ts sets output: 'standalone'",
                                    "port": "$HOSTNAME=0.0.0.0"}),
    ("node-next-static-export", None, {"output": "next.config.js sets output: 'export'"}),
    ("node-nuxt-server", None, {"start command": ".output/server/index.mjs"}),
    ("node-sveltekit-node", None, {"start command": "@sveltejs/adapter-node"}),
    ("node-astro-ssr", None, {"start command": "@astrojs/node"}),
    ("node-remix", None, {"start command": "remix-serve"}),
    ("node-nest", None, {"start command": "start:prod"}),
    ("node-express-main", None, {"start command": "package.json main is src/server.js"}),
    ("node-fastify-server-js", None, {"start command": "server.js is there"}),
    ("node-vite", None, {"output": "vite build"}),
    ("fn-node-main-nvmrc", "type=function", {"handler": "package.json main lib/handler.js",
                                             "runtime": ".nvmrc: AWS Lambda runs it as nodejs22.x"}),
    ("fn-node-default", "type=function", {"runtime": "the newest line AWS Lambda runs"}),
    ("static-public", None, {"output": "public/index.html"}),
    ("static-root", "type=oci,dest=x", {"start command": "busybox httpd", "port": "httpd listens on $PORT"}),
    ("python-gunicorn", None, {"start command": "gunicorn", "framework": "flask"}),
    ("python-pyproject", None, {"package manager": "pyproject.toml"}),
    ("go-basic", None, {"version": "go.mod line 3", "start command": "main package"}),
    ("go-cmd-dir", None, {"start command": "./cmd/apiserver"}),
    ("java-quarkus", None, {"framework": "quarkus-maven-plugin", "version": "pom.xml maven.compiler.release",
                            "package manager": "pom.xml"}),
    ("java-multi-module", None, {"build command": "module web (the first module with the Spring Boot plugin)",
                                 "framework": "Spring Boot 3.1.5"}),
    ("java-gradle-no-wrapper", None, {"build command": "build.gradle.kts without a whole Gradle wrapper",
                                      "framework": "build.gradle.kts names io.quarkus"}),
    ("rust-workspace", None, {"version": "rust-toolchain.toml asks for 1.80.0", "package manager": "Cargo.toml"}),
    ("rust-kiln-json-bin", None, {"build command": "chosen by kiln.json rust.bin"}),
    ("rust-default-run", None, {"build command": "Cargo.toml package.default-run"}),
    ("deno-tasks", None, {"start command": "tasks.start", "package manager": "deno.jsonc"}),
    ("php-laravel", None, {"framework": "laravel/framework", "package manager": "composer.json"}),
    ("ruby-rails", None, {"framework": "rails", "package manager": "Gemfile"}),
]


def explain(name, out):
    args = ["plan", "--explain"] + (["-o", out] if out else []) + [os.path.join(DETECT, name, "tree")]
    r = kiln(*args, env=ENV)
    if r.returncode != 0:
        return None, r.stderr
    choices, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("note "):
            cur = None
        elif line.startswith("                   why: ") and cur:
            choices[cur] = line.split("why: ", 1)[1]
        elif line and not line.startswith(" "):
            cur = line[:16].strip()
            choices[cur] = None
    return choices, r.stdout


for name, out, want in CASES:
    if not os.path.isdir(os.path.join(DETECT, name)):
        T.check(f"{name}: the fixture exists", False, name)
        continue
    choices, text = explain(name, out)
    if not T.check(f"{name}: kiln plan --explain succeeds", choices is not None, text):
        continue
    unexplained = [c for c, why in choices.items() if why is None]
    T.check(f"{name}: every choice has its reason", not unexplained, f"{unexplained}\n{text}")
    generic = [f"{c}: {why}" for c, why in choices.items() if why and any(p in why for p in PLACEHOLDERS)]
    T.check(f"{name}: no reason is a placeholder", not generic, "\n".join(generic))
    for choice, words in want.items():
        T.check(f"{name}: the {choice} reason says {words!r}", words in (choices.get(choice) or ""),
                f"{choice}: {choices.get(choice)}\n{text}")
T.done()

#!/usr/bin/env python3
"""JVM builds beyond Spring Boot, with Maven Central for real: a Quarkus app
(tests/fixtures/jvm-quarkus, fast-jar: lib/ its own layer) and a multi-module Maven project
(tests/fixtures/jvm-multi: the server module chosen, its reactor dependency beside it in lib/)
answering over loopback on the JRE-only run image; kiln.json's "java" settings (version,
module) against KILN_JAVA_*; Gradle, whose distributions are on no registry kiln's builds
reach: the plan and the build step both name what is missing, word for word. Caches and
images persist under /var/cache/kiln (one cold build of each fixture, ~1-2 min each)."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from examples_lib import ENV, build, build_answering, ensure_images, fixture, no_build_tools  # noqa: E402
from kilntest import T, kiln  # noqa: E402

GRADLE_DIST = "https://services.gradle.org/distributions/gradle-9.4.1-bin.zip"


def plan(src, env=None):
    e = dict(ENV)
    e.update(env or {})
    r = kiln("plan", src, env=e)
    return (json.loads(r.stdout) if r.returncode == 0 else None), r


# --- plans: kiln.json "java" settings, module selection, the errors naming them ---------------
multi = fixture("", "jvm-multi")
p, r = plan(multi)
T.check("multi-module: the plan builds the last jar module (server) with -pl server -am and says why",
        p is not None and " -pl server -am" in p["commands"]["build"]
        and "module server (no module has the Spring Boot or Quarkus plugin: the last jar module of <modules>"
        in p["why"]["build"], r.stdout + r.stderr)
open(os.path.join(multi, "kiln.json"), "w").write('{"java": {"module": "greeting", "version": "11"}}\n')
p, r = plan(multi)
T.check("kiln.json java.module and java.version are the plan's, each reason naming kiln.json",
        p is not None and " -pl greeting -am" in p["commands"]["build"]
        and "module greeting (kiln.json java.module names it)" in p["why"]["build"]
        and p["versionSource"] == "kiln.json java.version" and p["versions"]["java"] == "17"
        and p["why"]["version"].startswith("kiln.json java.version is 11: built with OpenJDK 17"),
        r.stdout + r.stderr)
p, r = plan(multi, {"KILN_JAVA_VERSION": "17", "KILN_JAVA_MODULE": "server"})
T.check("KILN_JAVA_VERSION and KILN_JAVA_MODULE win over kiln.json",
        p is not None and p["versionSource"] == "KILN_JAVA_VERSION" and " -pl server -am" in p["commands"]["build"],
        r.stdout + r.stderr)
for body, msg in [
    ('{"java": {"version": "21"}}', "kiln.json java.version asks for Java 21 but the only JDK kiln's build image "
     "can have is OpenJDK 17 (Debian 12 has no newer one); lower it to 17, or build with a Dockerfile whose "
     "image has JDK 21"),
    ('{"java": {"module": "../etc"}}', "kiln.json java.module names the module \"../etc\", which pom.xml's "
     "<modules> does not list"),
    ('{"java": {"modul": "server"}}', "kiln.json: java.modul is not a setting of the java provider (it has "
     "version, module)"),
    ('{"java": "17"}', "kiln.json: java must be an object of the java provider's settings"),
    ('{"javaa": {}}', "kiln.json: unknown member \"javaa\""),
]:
    open(os.path.join(multi, "kiln.json"), "w").write(body)
    p, r = plan(multi)
    T.check(f"kiln.json {body}: refused naming it", p is None and msg in r.stderr, r.stderr)
os.unlink(os.path.join(multi, "kiln.json"))

gradle = fixture("", "jvm-gradle")
p, r = plan(gradle)
note = (f"the Gradle wrapper fetches its distribution {GRADLE_DIST} in the build step: Gradle distributions "
        "are not on Maven Central, and kiln's builds reach only the package registries, so unless that URL is "
        "a mirror they reach the build step stops naming it")
T.check("gradle: the plan says the wrapper's distribution is not reachable, naming it",
        p is not None and p["packageManager"] == "gradle" and note in p["notes"]
        and p["versionSource"] == "build.gradle", r.stdout + r.stderr)

ok, log = ensure_images("jvm-build", "jvm-run")
if T.check("jvm-build and jvm-run images are built (images/build.sh)", ok, log[-3000:]):
    # --- Quarkus: fast-jar, lib/ its own layer, answering on $PORT --------------------------
    got = build_answering(fixture("", "jvm-quarkus"), "quarkus", "quarkus ok\n",
                          "quarkus: the auto build succeeds (Maven Central, ~/.m2 cache mount)",
                          "quarkus: the image answers over loopback on $PORT", 120)
    if got:
        _, layers, flat = got
        dep = [i for i, f in enumerate(layers) if any(x.startswith("app/lib/main/io.quarkus.quarkus-rest") for x in f)]
        app = [i for i, f in enumerate(layers) if "app/quarkus-run.jar" in f]
        T.check("quarkus: lib/ (the dependencies) and the application are separate layers, lib/ first",
                len(dep) == 1 and len(app) == 1 and dep[0] < app[0]
                and not any(x.startswith("app/lib/") for x in layers[app[0]]), f"dep={dep} app={app}")
        T.check("quarkus: no javac, mvn or compiler and no source in the run image",
                no_build_tools(flat) and not any(x.startswith("app/src/") or x == "app/pom.xml" for x in flat),
                sorted(x for x in flat if "bin/" in x)[:40])

    # --- multi-module: the server module, its reactor dependency in lib/ ----------------------
    got = build_answering(multi, "multi", "multi-module ok\n",
                          "multi-module: the auto build succeeds (mvn package -pl server -am)",
                          "multi-module: the server module answers with the greeting module's text", 120)
    if got:
        _, layers, flat = got
        T.check("multi-module: the reactor dependency is in lib/ (its own layer), the app jar after it",
                "app/lib/greeting-0.1.0.jar" in flat and "app/app.jar" in layers[-1]
                and "app/lib/greeting-0.1.0.jar" not in layers[-1], sorted(x for x in flat if x.startswith("app/")))
        T.check("multi-module: no other module, source or build tool in the run image",
                no_build_tools(flat) and not any(x.startswith(("app/greeting/", "app/tools/", "app/server/"))
                                                 for x in flat), "")

    # --- Gradle: the build step stops naming the distribution it cannot fetch ------------------
    r = build(gradle, "--output", f"type=oci,dest={os.path.join(T.tmp, 'gradle-image')}")
    msg = (f"kiln: the Gradle wrapper could not fetch its distribution {GRADLE_DIST} "
           "(gradle/wrapper/gradle-wrapper.properties distributionUrl): kiln's builds reach Maven Central but "
           "not that host; build with Maven (pom.xml) or a Dockerfile whose image has Gradle")
    T.check("gradle: the build step fails with the message naming the distribution, word for word",
            r.returncode != 0 and msg in r.stderr and "the build step failed" in r.stderr, r.stderr[-3000:])
    shutil.rmtree(os.path.join(gradle, "gradle"))
    os.unlink(os.path.join(gradle, "gradlew"))
    msg = ("kiln: build.gradle needs Gradle, which kiln's build image does not carry (Debian 12's gradle is 4.4, "
           "too old for it) and no Gradle wrapper (gradlew and gradle/wrapper/gradle-wrapper.properties) is there "
           "to fetch one: add the wrapper or build with a Dockerfile")
    p, _ = plan(gradle)
    r = build(gradle, "--output", f"type=oci,dest={os.path.join(T.tmp, 'gradle-image2')}")
    T.check("gradle without a wrapper: the plan's note and the build step's error say what is missing, word for word",
            p is not None and ("the build step will stop: " + msg[6:]) in p["notes"]
            and r.returncode != 0 and msg in r.stderr, r.stderr[-3000:])
T.done()

"""kiln serve's dashboard in headless Chromium: the builds list shows a running build with
its live status, and the build page shows log lines that arrive while it is open.
Uses the stand-in build command (a long build printing a line every 0.3 s)."""
import os
import re
import shutil
import subprocess
import tempfile

from kilntest import T
from server_common import TOKEN, Server, write_fake_build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    T.skip("dashboard in headless Chromium", "chromium is not installed")
    T.done()

fake = write_fake_build(T.tmp)
srv = Server(os.path.join(T.tmp, "root"), workers=1, config={"tokens": [TOKEN]},
             build_command=fake, env={"FAKE_SLEEP": "0.3", "FAKE_STEPS": "100"}).start()
st, b = srv.submit({"source": {"git": "https://git.example.test/acme/app.git"}})
bid = b["id"]
srv.wait_status(bid, ["building"], timeout=30)


def dump(url):
    """The DOM after the page ran for a while (virtual time lets its timers and fetches run)."""
    profile = tempfile.mkdtemp(prefix="chromium.", dir=T.tmp)
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--user-data-dir=" + profile,
                        "--virtual-time-budget=3000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    return r.stdout


def steps_in(text):
    return [int(n) for n in re.findall(r"RUN step (\d+)", text)]


dom = dump("http://127.0.0.1:%d/#token=%s" % (srv.port, TOKEN))
row = re.search(r'<tr class="build" data-id="%s">(.*?)</tr>' % bid, dom, re.S)
T.check("the list shows the build", row is not None, dom[-2000:])
T.check("the list shows it running", row is not None and
        '<td class="status building">building</td>' in row.group(1), row.group(0) if row else dom[-800:])

st, before, _ = srv.request("GET", "/v1/builds/%s/logs" % bid, raw=True)
last_before = max(steps_in(before.decode()) or [0])
dom = dump("http://127.0.0.1:%d/#build/%s&token=%s" % (srv.port, bid, TOKEN))
m = re.search(r'<pre id="log">(.*?)</pre>', dom, re.S)
shown = steps_in(m.group(1)) if m else []
T.check("the build page shows the log from the start", m is not None and 1 in shown,
        dom[-1500:])
T.check("log lines written after the page opened arrive (followed)",
        shown and max(shown) > last_before, (last_before, shown))
T.check("the build page shows its status and phases",
        'data-status="building"' in dom and "<li>cloning" in dom, dom[-1500:])
srv.request("POST", "/v1/builds/%s/cancel" % bid)
T.done()

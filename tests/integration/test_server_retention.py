"""kiln serve's retention settings (docs/server-config.md): "build_log_retention" removes the logs
of finished builds older than it (whatever --gc-max-age says) and "access_log_retention" rotates
the --access-log file (PATH.<UTC stamp>) and removes rotations older than it, both in the
server's periodic sweep (--gc-interval); no other file is touched."""
import glob
import os
import time

from kilntest import T
from server_common import TOKEN, Server

root = os.path.join(T.tmp, "root")
alog = os.path.join(T.tmp, "access.log")
OLD_LINE = '{"time":"2020-01-01T00:00:00.000Z","request_id":"old","method":"GET"}\n'
with open(alog, "w") as f:
    f.write(OLD_LINE)
old_rotation = alog + ".20200101T000000Z"
not_ours = alog + ".keep"
for p in (old_rotation, not_ours):
    with open(p, "w") as f:
        f.write("x\n")
    os.utime(p, (time.time() - 3 * 86400,) * 2)

srv = Server(root, workers=1,
             config={"tokens": [TOKEN], "build_log_retention": 3600, "access_log_retention": 7200},
             extra=["--gc-interval", "1", "--gc-max-age", "1000", "--access-log", alog]).start()
logs = os.path.join(root, "logs")
old_log = os.path.join(logs, "b-00000000000000aa.log")
new_log = os.path.join(logs, "b-00000000000000bb.log")
for p, mtime in ((old_log, time.time() - 2 * 3600), (new_log, time.time() + 3600)):
    with open(p, "w") as f:
        f.write("log\n")
    os.utime(p, (mtime, mtime))


def rotations():
    return [p for p in glob.glob(alog + ".2*") if p != old_rotation]


end = time.time() + 60
while time.time() < end and (os.path.exists(old_log) or not rotations()
                             or os.path.exists(old_rotation)):
    time.sleep(0.2)
st, _ = srv.request("GET", "/healthz", token=None)
srv.term()

T.check("build_log_retention: a finished build's log older than it is removed by the sweep "
        "(--gc-max-age 1000 h would keep it)", not os.path.exists(old_log), os.listdir(logs))
T.check("build_log_retention: a younger log stays", os.path.exists(new_log), os.listdir(logs))
rot = rotations()
T.check("access_log_retention: the file whose first line is older than half of it is rotated "
        "to PATH.<UTC stamp>", len(rot) == 1 and open(rot[0]).read() == OLD_LINE,
        [os.path.basename(p) for p in glob.glob(alog + "*")])
T.check("access_log_retention: a rotation older than it is removed",
        not os.path.exists(old_rotation), os.listdir(T.tmp))
T.check("access_log_retention: a file of another name stays", os.path.exists(not_ours),
        os.listdir(T.tmp))
text = open(alog).read()
T.check("access log: requests after the rotation go to a fresh PATH",
        st == 200 and '"route":"/healthz"' in text and "2020-01-01" not in text, text)
T.done()

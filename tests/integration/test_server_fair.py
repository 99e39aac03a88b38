"""kiln serve schedules its local queue fairly across tenants: the next build to start is
the next tenant's (round robin among tenants with queued builds), so one tenant's flood of
builds does not hold back another tenant's single build; a tenant's max_concurrent caps its
running builds while other tenants use the free workers. Asserted on the order of the
builds' start and finish events (their records), never on durations.

The builds run the stand-in build command (server_common.FAKE_BUILD): this is about the
queue, not about building."""
import os
import time

from kilntest import T
from server_common import Server, write_fake_build

fake = write_fake_build(T.tmp)
TA, TB, TC, TD = ("acme-token-0123456789", "beta-token-0123456789", "cyan-token-0123456789",
                  "dune-token-0123456789")
config = {"tenants": [{"name": "acme", "tokens": [TA]},
                      {"name": "beta", "tokens": [TB]},
                      {"name": "cyan", "tokens": [TC], "max_concurrent": 1},
                      {"name": "dune", "tokens": [TD]}]}


def submit(srv, token, repo):
    st, body = srv.request("POST", "/v1/builds",
                           {"source": {"git": "https://git.example.test/%s.git" % repo}},
                           token=token)
    assert st == 202, (st, body)
    return body["id"]


def records(srv, ids, token):
    return {i: srv.request("GET", "/v1/builds/" + i, token=token)[1] for i in ids}


def wait_all(srv, ids, token):
    """The records of builds ids (the tenant's token) once all of them have ended."""
    end = time.time() + 180
    while time.time() < end:
        recs = records(srv, ids, token)
        if all(b.get("status") in ("succeeded", "failed", "canceled") for b in recs.values()):
            return recs
        time.sleep(0.2)
    raise AssertionError("builds did not end: %s" % records(srv, ids, token))


# --- a flood of 12 from acme, then one build from beta, on one worker ---
one = Server(os.path.join(T.tmp, "root-one"), workers=1, config=config, build_command=fake,
             env={"FAKE_SLEEP": "0.2", "FAKE_STEPS": "2"}).start()
flood = [submit(one, TA, "acme/app%d" % (k % 3)) for k in range(12)]
lone = submit(one, TB, "beta/app")
acme = wait_all(one, flood, TA)
beta = wait_all(one, [lone], TB)[lone]
T.check("every build of the flood and beta's ran",
        all(b["status"] == "succeeded" for b in acme.values()) and beta["status"] == "succeeded",
        (acme, beta))
# beta's build was queued at created_at; round robin starts it on the next free worker: no
# acme build starts between its creation and its start
jumped = [i for i, b in acme.items() if beta["created_at"] <= b["started_at"] < beta["started_at"]]
T.check("beta's build starts at the next turn: no acme build started while it waited",
        jumped == [], (beta, jumped))
later = sorted(b["started_at"] for b in acme.values() if b["started_at"] > beta["started_at"])
T.check("and acme's flood was not done before it (it did not start last)", len(later) >= 5,
        (beta["started_at"], sorted(b["started_at"] for b in acme.values())))
one.term()

# --- cyan may run one build at a time; dune uses the other workers meanwhile ---
three = Server(os.path.join(T.tmp, "root-three"), workers=3, config=config, build_command=fake,
               env={"FAKE_SLEEP": "0.3", "FAKE_STEPS": "2"}).start()
cyan_ids = [submit(three, TC, "cyan/app%d" % k) for k in range(4)]
dune_ids = [submit(three, TD, "dune/app%d" % k) for k in range(4)]
cyan = sorted(wait_all(three, cyan_ids, TC).values(), key=lambda b: b["started_at"])
dune = wait_all(three, dune_ids, TD)
T.check("cyan's builds all ran", all(b["status"] == "succeeded" for b in cyan), cyan)
overlaps = [(a["id"], b["id"]) for a, b in zip(cyan, cyan[1:]) if b["started_at"] < a["finished_at"]]
T.check("max_concurrent 1: no cyan build started before the previous one finished",
        overlaps == [], [(b["started_at"], b["finished_at"]) for b in cyan])
T.check("dune's builds ran beside cyan's (one started before cyan's last finished)",
        any(b["started_at"] < cyan[-1]["finished_at"] for b in dune.values()),
        (cyan[-1], dune))
st, other = three.request("GET", "/v1/builds/" + cyan_ids[0], token=TD)
T.check("a tenant still sees only its own builds (dune asks for cyan's: 404)", st == 404, other)
three.term()
T.done()

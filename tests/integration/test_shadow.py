#!/usr/bin/env python3
"""Integration test: shadow reloads (`reload --shadow FILE`, `switchyard
diff`) against the real daemon.

One switchyard with console sinks c and b and the management console.
Known keys are sent (10 legacy.db.*, 5 old.*, 7 api.* timers, 3 both.*
gauges, 20 same.*, and live.k), then:

   1. diff: a config that renames legacy.* to apps.*, drops old.*,
      samples api.* at 0.1 and sends both.* to b as well: exactly four
      groups with exact counts (10, 5, 7, 3), 25 changed of 46 compared,
      examples named; through the console and through `switchyard diff`
      (exit 1); meanwhile live.k is sent 400 times and arrives exact, and
      nothing running changes (legacy.* still flushed under its name);
   2. empty: the running config itself: 46 compared, 0 changed, no group
      (`switchyard diff` exits 0);
   3. reload: a real reload to the shadowed config afterwards applies:
      apps.db.* arrives, old.* is dropped;
   4. senders: rules that decide per sender: a key sent from 70 senders is
      asked about with 64 of them, the rest counted; only the sender the
      new rule names changes;
   5. tenants: with tokens k1 -> t1, k2 -> t2, k3 -> t3 in use, a config
      that maps k1 to t9 and drops k2: the shadow asks the new auth about
      each token answered since the last reload (with its listener and
      sender) and reports t1 -> t9 and t2 -> (refused), never the tokens;
      switchyard diff exits 1; the running auth: no change, exit 0;
   6. the five reports (console and `switchyard diff`) are counted as ok
      in switchyard_shadow_reloads_total, none as failed.

Abuse (files outside the config's directory, configs that loop, run out
of memory or fail, two shadows at once, a huge diff) is test_badinput's
shadow_abuse.

Usage: /usr/bin/python3 tests/integration/test_shadow.py
"""
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from lib.netutil import LOOPBACK  # noqa: E402
from lib.proc import make_workdir, remove_workdir, wait_until  # noqa: E402
from lib.results import Results  # noqa: E402
from lib.switchyard import switchyard_binary  # noqa: E402
from test_badinput import Daemon, finish, start, tcp_send  # noqa: E402

TEST_NAME = "test_shadow"

OLD_ROUTES = '''  routes = {
    route.prefix "debug." :drop "no debug",
    route.default() :to "c",
  },
'''
NEW_ROUTES = '''  routes = {
    route.prefix "debug." :drop "no debug",
    route.match "^legacy%.(.+)$" :rename "apps.%1" :to "c",
    route.prefix "old." :drop "gone",
    route.prefix "api." :sample(0.1) :to "c",
    route.prefix "both." :to { "b", "c" },
    route.default() :to "c",
  },
'''
KNOWN = ([b"legacy.db.q%d:1|c" % i for i in range(10)] + [b"old.x%d:1|c" % i for i in range(5)] +
         [b"api.lat%d:3|ms" % i for i in range(7)] + [b"both.k%d:1|g" % i for i in range(3)] +
         [b"same.k%d:1|c" % i for i in range(20)] + [b"live.k:1|c"])
GROUPS = {
    "renamed: legacy.* -> apps.*": 10,
    "dropped: old.* (c -> dropped)": 5,
    "sample: api.* sample 1 -> 0.1": 7,
    "sinks: both.* sinks c -> b,c": 3,
}


def console(d, cmd, timeout=30.0):
    """One console command; its reply up to END."""
    with socket.create_connection((LOOPBACK, d.mgmt_port), timeout=timeout) as s:
        s.sendall(cmd.encode() + b"\n")
        data = b""
        deadline = time.monotonic() + timeout
        while b"END\n" not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace")


def groups(report):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^group: (.*): (\d+)$", report, re.M)}


def field(report, name):
    m = re.search(r"^%s: (\d+)" % name, report, re.M)
    return int(m.group(1)) if m else None


def diff_cli(d, path):
    p = subprocess.run([switchyard_binary(), "diff", "-c", path, "--admin",
                        "%s:%d" % (LOOPBACK, d.mgmt_port)], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def write(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def shadow_metric(d, result):
    return d.metric('switchyard_shadow_reloads_total{result="%s"}' % result)


def scenario_shadow(res, workdir):
    label = "shadow"
    b_path = os.path.join(workdir, "sy-shadow.b.txt")
    d = Daemon(workdir, "sy-shadow", {"flushInterval": 500}, mgmt=True, lua_body=OLD_ROUTES,
               sinks={"b": {"plugin": "console", "path": b_path}})
    try:
        if not start(res, label, d):
            return
        tcp_send(d.port, b"\n".join(KNOWN) + b"\n")
        wait_until(lambda: d.counter("same.k19") >= 1, 10, step=0.1)
        new_path = write(workdir, "new.lua", d.render("", NEW_ROUTES))
        same_path = write(workdir, "same.lua", d.render("", OLD_ROUTES))

        # -- 1. the diff, while live.k flows --------------------------------
        sent = [0]

        def sender():
            with socket.create_connection((LOOPBACK, d.port)) as s:
                while sent[0] < 400:
                    s.sendall(b"live.k:1|c\n")
                    sent[0] += 1
                    time.sleep(0.002)

        t = threading.Thread(target=sender)
        t.start()
        report = console(d, "reload --shadow %s" % new_path)
        rc, cli = diff_cli(d, new_path)
        t.join()
        res.note("report:\n" + report)
        res.check("%s: 46 keys compared, 25 would change, 21 unchanged" % label,
                  field(report, "compared") == 46 and field(report, "changed") == 25 and
                  field(report, "unchanged") == 21, report)
        res.check("%s: exactly the four groups, with their counts" % label, groups(report) == GROUPS,
                  "%r" % groups(report))
        res.check("%s: examples name the keys and their new decision" % label,
                  re.search(r"^  e\.g\. legacy\.db\.q\d\|c -> apps\.db\.q\d to c$", report, re.M) and
                  re.search(r"^  e\.g\. old\.x\d\|c: dropped \(gone\)$", report, re.M) and
                  "cost: " in report, report)
        res.check("%s: switchyard diff prints the same groups and exits 1" % label,
                  rc == 1 and groups(cli) == GROUPS, "rc %d\n%s" % (rc, cli))
        d.wait_flushes(2, 10)
        res.check("%s: live.k sent %d times during the shadow arrives exact" % (label, sent[0]),
                  wait_until(lambda: d.counter("live.k") == 1 + sent[0], 10, step=0.2),
                  "live.k %r of %d" % (d.counter("live.k"), 1 + sent[0]))
        tcp_send(d.port, b"legacy.db.q0:2|c\nold.x0:2|c\n")
        ok = wait_until(lambda: d.counter("legacy.db.q0") >= 3 and d.counter("old.x0") >= 3, 10,
                        step=0.1)
        res.check("%s: nothing running changed: legacy.* and old.* still flushed as before" % label,
                  ok and not d.names("stats.counters.apps."), "legacy %r old %r"
                  % (d.counter("legacy.db.q0"), d.counter("old.x0")))

        # -- 2. a config that changes nothing --------------------------------
        report = console(d, "reload --shadow %s" % same_path)
        rc, cli = diff_cli(d, same_path)
        res.check("%s: the running config: an empty diff" % label,
                  field(report, "compared") == 46 and field(report, "changed") == 0 and
                  not groups(report) and rc == 0 and not groups(cli), "rc %d\n%s\n%s" % (rc, report, cli))

        # rules that look at senders, over a table that does not know them
        sender_path = write(workdir, "sender.lua", d.render("", OLD_ROUTES.replace(
            'route.default()', 'route.sender "127.0.0.1" :to "b",\n    route.default()')))
        report = console(d, "reload --shadow %s" % sender_path)
        res.check("%s: new sender rules over a table without senders: said, keys asked with none"
                  % label, field(report, "compared") == 46 and field(report, "changed") == 0 and
                  "note: its rules look at senders and the running ones do not" in report, report)

        res.check("%s: the reports counted as ok, none failed" % label,
                  shadow_metric(d, "ok") == 5 and (shadow_metric(d, "failed") or 0) == 0,
                  "ok %r failed %r" % (shadow_metric(d, "ok"), shadow_metric(d, "failed")))

        # -- 3. a real reload afterwards -----------------------------------
        d.write_config(d.render("", NEW_ROUTES))
        d.hup()
        ok = wait_until(lambda: d.log_count(r"reload applied") >= 1, 15, step=0.1)
        tcp_send(d.port, b"legacy.db.q1:5|c\nold.x1:5|c\n")
        ok = ok and wait_until(lambda: d.counter("apps.db.q1") >= 5, 10, step=0.1)
        d.wait_flushes(2, 10)
        res.check("%s: a real reload afterwards applies the shadowed config" % label,
                  ok and d.counter("apps.db.q1") == 5 and d.counter("old.x1") == 1,
                  "apps.db.q1 %r old.x1 %r\n%s" % (d.counter("apps.db.q1"), d.counter("old.x1"), d.logs()))
        finish(res, label, d)
    finally:
        d.stop()


def scenario_senders(res, workdir):
    """Rules that decide per sender: each key is asked about with each of
    its recent senders, at most 64 of them."""
    label = "senders"
    b_path = os.path.join(workdir, "sy-senders.b.txt")
    old = '  routes = { route.sender "127.0.0.1" :to "c", route.default() :to "c" },\n'
    d = Daemon(workdir, "sy-senders", {"flushInterval": 500}, mgmt=True, lua_body=old,
               sinks={"b": {"plugin": "console", "path": b_path}})
    try:
        if not start(res, label, d):
            return
        for i in range(2, 72):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.%d" % i, 0))
                u.sendto(b"k.x:1|c", (LOOPBACK, d.port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            u.sendto(b"k.y:1|c", (LOOPBACK, d.port))
        wait_until(lambda: d.counter("k.x") >= 70 and d.counter("k.y") >= 1, 10, step=0.1)
        new = write(workdir, "senders.lua", d.render("", old.replace(':to "c", route.default()',
                                                                   ':to "b", route.default()')))
        report = console(d, "reload --shadow %s" % new)
        res.check("%s: 64 of k.x's 70 senders and k.y's one compared, 6 more counted; only the "
                  "sender the rule names changes" % label,
                  field(report, "compared") == 65 and field(report, "changed") == 1 and
                  "not compared: 6 more senders of keys with over 64" in report and
                  groups(report) == {"sinks: k.* sinks c -> b": 1} and
                  "e.g. k.y|c from 127.0.0.1 -> k.y to b" in report, report)
        finish(res, label, d)
    finally:
        d.stop()


def scenario_tenants(res, workdir):
    """Tokens: the shadow asks the new config's auth about every token the
    running one has answered since the last reload (with the listener and
    sender it was asked for) and reports the tenants that would change,
    never the tokens."""
    label = "tenants"
    auth = '  auth = { tokens = { k1 = "t1", k2 = "t2", k3 = "t3" } },\n'
    d = Daemon(workdir, "sy-tenants", {"flushInterval": 500}, mgmt=True, tcp_opts={"auth": True},
               lua_body=auth + OLD_ROUTES)
    try:
        if not start(res, label, d):
            return
        tcp_send(d.port, b"k1.a.x:1|c\nk2.b.y:1|c\nk3.c.z:1|c\nk1.a.w:1|c\n")
        wait_until(lambda: d.counter("t3.c.z") >= 1 and d.counter("t1.a.w") >= 1, 10, step=0.1)
        new = write(workdir, "tenants.lua", d.render("", auth.replace('k1 = "t1", k2 = "t2", ', 'k1 = "t9", ')
                                                   + OLD_ROUTES))
        same = write(workdir, "tenants-same.lua", d.render("", auth + OLD_ROUTES))
        report = console(d, "reload --shadow %s" % new)
        rc, cli = diff_cli(d, new)
        res.note("report:\n" + report)
        res.check("%s: 3 tokens compared, 2 would change tenant, in 2 groups; no key changes" % label,
                  re.search(r"^tokens: 3 compared \(.*\), 2 would change tenant in 2 groups$", report, re.M)
                  is not None and field(report, "changed") == 0 and
                  re.search(r"^changed: 0 in 0 groups$", report, re.M) is not None, report)
        res.check("%s: the groups: t1 -> t9 and t2 -> (refused), with the sender and listener" % label,
                  groups(report) == {"tenant: t1 -> t9": 1, "tenant: t2 -> (refused)": 1} and
                  "  e.g. a token from 127.0.0.1 on %s: t1 -> t9" % d.tcp_url in report, report)
        res.check("%s: the tokens themselves are never shown" % label,
                  not re.search(r"\bk[123]\b", report) and not re.search(r"\bk[123]\b", cli), report)
        res.check("%s: switchyard diff exits 1 when only tenants would change" % label,
                  rc == 1 and groups(cli) == groups(report), "rc %d\n%s" % (rc, cli))
        report = console(d, "reload --shadow %s" % same)
        rc, cli = diff_cli(d, same)
        res.check("%s: the running auth: 3 tokens compared, none would change; diff exits 0" % label,
                  re.search(r"^tokens: 3 compared \(.*\), 0 would change tenant in 0 groups$", report, re.M)
                  is not None and not groups(report) and rc == 0, "rc %d\n%s" % (rc, report))
        finish(res, label, d)
    finally:
        d.stop()


def main():
    res = Results(TEST_NAME)
    binary = switchyard_binary()
    if not res.check("switchyard binary exists", os.access(binary, os.X_OK), binary):
        return res.finish()
    workdir = make_workdir("sy-shadow-")
    t0 = time.monotonic()
    try:
        scenario_shadow(res, workdir)
        scenario_senders(res, workdir)
        scenario_tenants(res, workdir)
    except Exception as e:
        traceback.print_exc()
        res.check("shadow: harness ran without error", False, repr(e))
    finally:
        remove_workdir(workdir)
    res.note("total %.1f s" % (time.monotonic() - t0))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())

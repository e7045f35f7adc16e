"""The runner every scenario-based integration suite shares.

    sys.exit(scenarios.run(TEST_NAME, SCENARIOS, "sy-name-"))

SCENARIOS is a list of (name, fn(res, workdir)); the command line may
name some of them (an unknown name is an error, exit 2).  Each runs in
turn in one temporary directory; a scenario that raises is a failed
check, never a skip, and its time is noted.
"""
import os
import sys
import time
import traceback

from .proc import make_workdir, remove_workdir
from .results import Results
from .switchyard import switchyard_binary


def run(test_name, scenarios, workdir_prefix, argv=None):
    wanted = sys.argv[1:] if argv is None else argv
    unknown = [w for w in wanted if w not in dict(scenarios)]
    if unknown:
        print("unknown scenario(s) %s; choose from %s"
              % (", ".join(unknown), ", ".join(n for n, _ in scenarios)))
        return 2
    res = Results(test_name)
    binary = switchyard_binary()
    print("switchyard binary: %s" % binary)
    if not res.check("switchyard binary exists", os.access(binary, os.X_OK), binary):
        return res.finish()
    workdir = make_workdir(workdir_prefix)
    t_all = time.monotonic()
    try:
        for name, fn in scenarios:
            if wanted and name not in wanted:
                continue
            print("== %s" % name)
            sys.stdout.flush()
            t0 = time.monotonic()
            try:
                fn(res, workdir)
            except Exception as e:  # a crash of the harness is a failure, not a skip
                traceback.print_exc()
                res.check("%s: harness ran without error" % name, False, repr(e))
            res.note("%s took %.1f s" % (name, time.monotonic() - t0))
    finally:
        remove_workdir(workdir)
    res.note("total %.1f s" % (time.monotonic() - t_all))
    return res.finish()

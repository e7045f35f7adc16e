"""The pass/fail tally every Python test script prints and exits with.

The closing line is exactly `<name>: N passed, M failed` (plus
`, K skipped` when something was skipped), the form the test runner reads.
"""
import signal
import sys

RECAP_LINES = 4


def _terminated(signum, frame):
    """SIGTERM (tests/run.sh's per-suite timeout) unwinds the test like an
    exception, so its `finally` blocks stop the servers it started: they
    run in sessions of their own, out of reach of the timeout's signal."""
    raise SystemExit("terminated by signal %d (timeout?)" % signum)


class Results:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminated)

    def check(self, label, ok, detail=""):
        """Record one sub-check; print its outcome and, on failure, detail."""
        if ok:
            self.passed += 1
            print("PASS  %s" % label)
        else:
            self.failed += 1
            self.failures.append((label, detail))
            print("FAIL  %s" % label)
            if detail:
                print(_indent(detail))
        sys.stdout.flush()
        return ok

    def skip(self, label, why):
        self.skipped += 1
        print("SKIP  %s (%s)" % (label, why))

    def note(self, text):
        print("      " + text)

    def summary_line(self):
        line = "%s: %d passed, %d failed" % (self.name, self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        return line

    def finish(self):
        """Print the summary and return the process exit code.  A run that
        checked nothing fails: it proved nothing."""
        if self.failures:
            # A recap with the first lines of each failure's detail, so the
            # tail of the output alone says what went wrong.
            print("\nfailed checks:")
            for label, detail in self.failures:
                print("  - " + label)
                lines = detail.splitlines()
                for line in lines[:RECAP_LINES]:
                    print("      " + line[:200])
                if len(lines) > RECAP_LINES:
                    print("      ... (%d more lines above)" % (len(lines) - RECAP_LINES))
        if self.passed + self.failed == 0:
            self.failed += 1
            print("no check ran")
        print(self.summary_line())
        sys.stdout.flush()
        return 0 if self.failed == 0 else 1


def _indent(text, prefix="      "):
    return "\n".join(prefix + line for line in text.splitlines())

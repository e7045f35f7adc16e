"""Where a sanitized daemon's ASan/UBSan report lands, and the check on it.

A report goes to the process's stderr unless ASAN_OPTIONS or UBSAN_OPTIONS
set log_path=PREFIX; then each process writes PREFIX.<pid> instead.
tests/run.sh sets log_path for its ASan+UBSan lane, so a check that read
only the daemon's stderr there could never fail.  report() reads both: the
daemon's stderr and the log_path files of its PID.

Against a binary built without the sanitizers there is no report to look
for, and check_clean() records no check at all (one that cannot fail).
"""
import glob
import os

MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
           "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")

_sanitized = {}


def sanitized(binary):
    """True if the executable carries the ASan or UBSan runtime."""
    binary = os.path.realpath(binary)
    if binary not in _sanitized:
        try:
            with open(binary, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        _sanitized[binary] = b"__asan_init" in data or b"__ubsan_handle_" in data
    return _sanitized[binary]


def log_prefixes(env=None):
    """The log_path prefixes ASAN_OPTIONS and UBSAN_OPTIONS name."""
    env = os.environ if env is None else env
    out = []
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        for opt in env.get(var, "").split(":"):
            if opt.startswith("log_path="):
                path = opt[len("log_path="):]
                if path and path not in ("stderr", "stdout") and path not in out:
                    out.append(path)
    return out


def report_files(pid, env=None):
    """The log_path files the process with this PID wrote."""
    if pid is None:
        return []
    files = []
    for prefix in log_prefixes(env):
        files += sorted(glob.glob("%s.%d" % (prefix, pid)) + glob.glob("%s.%d.*" % (prefix, pid)))
    return files


def report(pid, stderr_text, env=None):
    """The first sanitizer report of the process (from its log_path files,
    then its stderr), shortened; None if there is none."""
    sources = []
    for path in report_files(pid, env):
        try:
            with open(path, "rb") as f:
                sources.append((path, f.read().decode("utf-8", "replace")))
        except OSError:
            pass
    sources.append(("stderr", stderr_text or ""))
    for where, text in sources:
        for marker in MARKERS:
            i = text.find(marker)
            if i >= 0:
                return "%s:\n%s" % (where, text[max(0, i - 200):i + 4000])
    return None


def where(env=None):
    """Where reports are read from, for a check's label."""
    prefixes = log_prefixes(env)
    return "stderr and %s.<pid>" % prefixes[0] if prefixes else "stderr"


def check_clean(res, label, binary, pid, stderr_text, env=None):
    """Record "no sanitizer report" for a stopped daemon, if the binary is
    sanitized; returns the check's outcome (True when none was made)."""
    if not sanitized(binary):
        return True
    rep = report(pid, stderr_text, env)
    return res.check("%s: no sanitizer report (%s)" % (label, where(env)), rep is None, rep or "")

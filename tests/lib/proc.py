"""Child processes with their output kept in files.

Every server a test starts goes through Process: output lands in the test's
temp dir (a pipe nobody reads could fill up and stall the daemon), the
process is stopped by its own PID, and its logs can be shown when a check
fails.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time


class Process:
    def __init__(self, name, argv, workdir, cwd=None, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.env = env
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.popen = None
        self.returncode = None

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self):
        """Start the process in its own session, so a Ctrl-C at the terminal
        reaches the test (which then stops it) rather than the daemon."""
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env,
                                          stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, start_new_session=True)
        finally:
            out.close()
            err.close()
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM by PID, then SIGKILL if it has not exited in `timeout`.
        Returns the exit code (negative for a signal)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.returncode = self.popen.returncode
        return self.returncode

    def logs(self, limit=6000):
        """The tail of stdout and stderr, for a failure report."""
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            text = data[-limit:].decode("utf-8", "replace")
            if text.strip():
                parts.append("---- %s %s (pid %s) ----\n%s" % (self.name, label, self.pid, text.rstrip()))
        return "\n".join(parts) if parts else "---- %s: no output ----" % self.name


class Restartable:
    """A server a test may stop and start again: each start is a new
    Process named NAME-N, so the earlier runs' output stays for a
    post-mortem; .proc is the newest.  stop() first wakes a process the
    test froze with SIGSTOP."""

    stop_timeout = 10.0

    def __init__(self, name, workdir):
        self.name = name
        self.workdir = workdir
        self.procs = []

    @property
    def proc(self):
        return self.procs[-1] if self.procs else None

    def spawn(self, argv, cwd=None, env=None):
        """Start the next run; its Process."""
        p = Process("%s-%d" % (self.name, len(self.procs) + 1), argv, self.workdir, cwd=cwd,
                    env=env).start()
        self.procs.append(p)
        return p

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL, and wait until it is gone (the port is free again)."""
        self.signal(signal.SIGKILL)
        self.proc.popen.wait(10)

    def stop(self):
        for p in self.procs:
            if p.alive():
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            p.stop(timeout=self.stop_timeout)

    def logs(self, limit=6000):
        return "\n".join(p.logs(limit) for p in self.procs) or "(%s never started)" % self.name


def make_workdir(prefix):
    """A fresh temp dir for one test run."""
    return tempfile.mkdtemp(prefix=prefix)


def remove_workdir(path):
    """Remove a test's temp dir, unless SY_KEEP_TMP=1 asks to keep it for a
    post-mortem (then say where it is)."""
    if os.environ.get("SY_KEEP_TMP") == "1":
        print("keeping temp dir %s" % path)
        return
    shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate, timeout, step=0.05):
    """Poll predicate() until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)

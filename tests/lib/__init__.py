"""Shared helpers for switchyard's Python tests (standard library only).

The tests run with Debian's /usr/bin/python3 and start every server they
need themselves, on loopback ports picked at run time:

  netutil   free ports, waiting for a listener, sending StatsD traffic
  capture   a Graphite plaintext listener that records what it receives
  proc      child processes with their output kept in files
  statsd    the reference, Etsy statsd 0.9.0 from npm
  switchyard  the daemon under test, with a Lua config written for it
  carbon    a real carbon-cache writing whisper files
  results   the pass/fail tally and the closing "N passed, M failed" line
"""
import os

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(TESTS_DIR)

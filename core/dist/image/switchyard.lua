-- /etc/switchyard/switchyard.lua: the container image's default config.
-- StatsD on UDP and TCP port 8125 and on the Unix socket in the
-- /run/switchyard volume; every flush printed on standard output (the
-- container's log); /health and /metrics over HTTP on port 8127.
-- Replace it with your own (a file or directory mounted over
-- /etc/switchyard); check it with `switchyard --check FILE`.
return {
  listen = { "udp://0.0.0.0:8125", "tcp://0.0.0.0:8125",
             { url = "unix:///run/switchyard/switchyard.sock", mode = "0666" } },
  flushInterval = 10000,
  percentThreshold = { 90 },
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  httpAddress = "0.0.0.0:8127",
  sinks = {
    console = { plugin = "console" },
  },
}

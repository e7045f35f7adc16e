return {
  listen = { "udp://127.0.0.1:8125", "tcp://127.0.0.1:8125", "unix:///tmp/s.sock", "unixgram:///tmp/s.dgram" },
  sinks = { out = { plugin = "console" } },
}

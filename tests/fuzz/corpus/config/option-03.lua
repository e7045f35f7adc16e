return {
  listen = { { url = "unix:///tmp/s.sock", mode = "0660", maxConnections = 10 } },
  sinks = { out = { plugin = "console" } },
}

return {
  listen = { { url = "tcp://127.0.0.1:8126", auth = true, maxLineLength = 1024, idleTimeout = 0 } },
  sinks = { out = { plugin = "console" } },
}

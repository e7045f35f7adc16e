return {
  flushInterval = 1000,
  sinks = { out = { plugin = "console" } },
}

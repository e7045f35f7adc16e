return {
  flushInterval = 4294967296,
  sinks = { out = { plugin = "console" } },
}

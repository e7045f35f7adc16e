return {
  maxKeys = 1e300,
  sinks = { out = { plugin = "console" } },
}

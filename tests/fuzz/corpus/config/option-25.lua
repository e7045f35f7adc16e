return {
  gaugesMaxTTL = 1e20,
  sinks = { out = { plugin = "console" } },
}

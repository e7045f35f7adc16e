return {
  deleteIdleStats = true, gaugesMaxTTL = 3,
  sinks = { out = { plugin = "console" } },
}

return {
  prefixStats = "mystats",
  sinks = { out = { plugin = "console" } },
}

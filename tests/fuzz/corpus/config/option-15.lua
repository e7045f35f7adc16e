return {
  graphite = { globalPrefix = "" },
  sinks = { out = { plugin = "console" } },
}

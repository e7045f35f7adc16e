return {
  backends = { "./backends/console" },
  sinks = { out = { plugin = "console" } },
}

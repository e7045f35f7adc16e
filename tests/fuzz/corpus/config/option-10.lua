return {
  flush_counts = false,
  sinks = { out = { plugin = "console" } },
}

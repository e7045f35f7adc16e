return {
  percentThreshold = { 90, -10, 99.9, 0, 100, -100 },
  sinks = { out = { plugin = "console" } },
}

return {
  percentThreshold = 50,
  sinks = { out = { plugin = "console" } },
}

return {
  timerSampleLimit = 1, maxKeys = 10,
  sinks = { out = { plugin = "console" } },
}

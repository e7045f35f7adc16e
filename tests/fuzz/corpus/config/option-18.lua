return {
  logLevel = "debug", sampleSeed = 12345,
  sinks = { out = { plugin = "console" } },
}

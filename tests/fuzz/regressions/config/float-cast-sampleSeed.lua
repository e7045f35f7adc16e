return {
  sampleSeed = -1,
  sinks = { out = { plugin = "console" } },
}

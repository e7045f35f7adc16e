return {
  sampleSeed = 1e30,
  sinks = { out = { plugin = "console" } },
}

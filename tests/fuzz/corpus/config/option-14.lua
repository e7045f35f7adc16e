return {
  graphite = { legacyNamespace = false, globalPrefix = "p", prefixCounter = "c", prefixTimer = "t", prefixGauge = "g", prefixSet = "s", globalSuffix = "sfx" },
  sinks = { out = { plugin = "console" } },
}

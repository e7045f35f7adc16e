return {
  ringSize = 262144, shutdownTimeout = 0,
  sinks = { out = { plugin = "console" } },
}

return {
  listen = { { url = "udp://127.0.0.1:1", threads = 1e30, receiveBuffer = 1e30, maxLineLength = 1e30, maxConnections = 1e30, idleTimeout = 1e30, mode = 1e30 } },
  flushInterval = 1e30, gaugesMaxTTL = 1e30, timerSampleLimit = 1e30, maxKeys = 1e30,
  ringSize = 1e30, shutdownTimeout = 1e30, luaMemoryLimit = 1e30, luaTimeout = 1e30, sampleSeed = -1,
  sinks = { o = { plugin = "console" } },
}

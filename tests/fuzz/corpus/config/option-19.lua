return {
  luaMemoryLimit = 1048576, luaTimeout = 1,
  sinks = { out = { plugin = "console" } },
}

return {
  keyNameSanitize = false,
  sinks = { out = { plugin = "console" } },
}

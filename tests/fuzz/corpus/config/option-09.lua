return {
  deleteCounters = true, deleteTimers = false, deleteSets = true, deleteGauges = true,
  sinks = { out = { plugin = "console" } },
}

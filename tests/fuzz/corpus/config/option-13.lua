return {
  calculatedTimerMetrics = { "count", "mean_percent", "upper", "histogram" },
  sinks = { out = { plugin = "console" } },
}

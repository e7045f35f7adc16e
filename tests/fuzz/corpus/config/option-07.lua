return {
  histogram = { { metric = "lat", bins = { 0.5, 1, 10, "inf" } }, { metric = "", bins = { 1 } } },
  sinks = { out = { plugin = "console" } },
}

-- sampling.lua - a switchyard config that keeps a fraction of its busiest
-- metrics.
--
-- route(...):sample(p) keeps each sample with probability p and counts
-- what it keeps 1/p times, the way statsd treats a client's "@0.1": a
-- counter's total, a timer's count and count_ps stay right on average,
-- while carbon and the aggregator do a fraction of the work.  Timer
-- statistics (mean, percentiles, ...) come from the kept samples.  Gauges
-- and sets are not scaled: sample them only when losing values is fine.
--
-- sampleSeed fixes the random sequence, so the same traffic in the same
-- order keeps the same samples: useful for tests and for comparing two
-- runs.  Leave it out in production.
--
-- Try it:
--   switchyard --check sampling.lua
--   spec/sampling_spec.lua      totals near what was sent, same seed, same result
local route = require "switchyard.route"

return {
  listen = { "udp://127.0.0.1:8125" },
  flushInterval = 10000,
  graphite = { legacyNamespace = false },
  sampleSeed = 20240601,

  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
  },

  routes = {
    route.prefix "clicks."          :sample(0.1)  :to "carbon",  -- one in ten
    route.glob "api.*.latency"      :sample(0.25) :to "carbon",  -- one in four
    route.default()                 :to "carbon",               -- everything else, all of it
  },

  checks = {
    { "clicks.home.banner", to = { "carbon" } },
    { "api.users.latency", type = "ms", to = { "carbon" } },
  },
}

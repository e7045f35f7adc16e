-- The config of the token harness (fuzz_token.c): an auth TCP listener and
-- an auth Unix listener beside a plain UDP one, tokens of every kind, and
-- routes that drop, sample, rename, pass through and look at the sender,
-- so a token's namespace meets every path a key can take.
-- tests/fuzz/token-fn.config.lua is the same with an auth function.
local route = require "switchyard.route"

return {
  listen = {
    "udp://127.0.0.1:8125",
    { url = "tcp://127.0.0.1:8126", auth = true },
    { url = "unix:///tmp/switchyard-fuzz.sock", auth = true },
  },
  flushInterval = 10000,
  deleteIdleStats = true,
  timerSampleLimit = 16,
  maxKeys = 50000,
  percentThreshold = { 90, -10, 50 },
  histogram = { { metric = "lat", bins = { 1, 10, 100, "inf" } } },
  sampleSeed = 7,
  graphite = { legacyNamespace = false, globalPrefix = "stats", globalSuffix = "sfx" },
  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
    other = { plugin = "console" },
    traces = { plugin = "console" },
  },
  routes = {
    route.prefix "drop."                  :drop "dropped by the fuzz config",
    route.prefix "tenant1.samp."          :sample(0.5) :to "carbon",
    route.match "^legacy%.(.+)$"          :rename "apps.%1" :to { "carbon", "other" },
    route.match "^tenant1%.legacy%.(.+)$" :rename "t1.%1" :to "other",
    route.tag "trace"                     :passthrough "traces",
    route.glob "ops.*.lat"                :to { "carbon", "other" },
    route.prefix "ops."                   :sender "10.0.0.0/8" :to "other",
    route.default()                       :to "carbon",
  },
  auth = { tokens = {
    s3cret = "tenant1",
    open = true,
    ops = { namespace = "ops", senders = { "10.0.0.0/8" } },
    wide = string.rep("w", 254),        -- the longest namespace that fits
    toolong = string.rep("x", 300),     -- too long to apply: the token is refused
    dotted = "a.b.c",
    [string.rep("t", 256)] = "edge",    -- the longest token the core asks about
  } },
}

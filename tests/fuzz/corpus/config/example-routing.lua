-- routing.lua - a switchyard config that routes metrics to four sinks.
--
-- Start from this file when different metrics belong in different places:
--
--   carbon   Graphite (carbon-cache or carbon-relay): the long-term store
--   redis    Redis: latest values and short time series, for dashboards
--   console  standard output: whatever you are looking at right now
--   traces   memcached: request traces, built from raw timer samples that
--            carry a trace id (api.req:120|ms|#trace:9f2c,root,path:/x)
--
-- Rules are tried from the top; the first whose conditions all hold
-- decides where a metric goes.  Conditions look at the metric's name (as
-- sent, before any rename), its tags (DogStatsD tags become ";tag=value"
-- in the name, and route.tag reads them), its type, and where it came from
-- (listener and sender).  Decisions are made once per key and cached, so
-- rules cost nothing per sample.
--
-- Try it:
--   switchyard --check routing.lua                 options, plugins, checks
--   echo 'legacy.shop.orders:1|c' | switchyard --dry-run -c routing.lua
--   spec/routing_spec.lua                          the rules as tests
local route = require "switchyard.route"

return {
  listen = {
    "udp://127.0.0.1:8125",
    "tcp://127.0.0.1:8125",  -- batch jobs send over TCP (see the batch. rule)
  },
  flushInterval = 10000,
  percentThreshold = { 90 },
  graphite = { legacyNamespace = false },  -- stats.counters.NAME.count etc.

  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
    redis = { plugin = "redis", host = "127.0.0.1", port = 6379, prefix = "switchyard:" },
    console = { plugin = "console", stream = "stdout" },
    traces = { plugin = "memcache_traces", host = "127.0.0.1", port = 11211 },
  },

  routes = {
    -- Noise that never leaves the host.
    route.prefix "debug."                        :drop "debug metrics stay on the host",
    route.glob "*.healthcheck.**"                :drop "load balancer probes",
    route.tag("env", { "test", "ci" })           :drop "test runs",
    route.when(function(m) return #m.name > 200 end) :drop "names over 200 bytes",

    -- Request spans: raw samples to the trace store, never aggregated
    -- (every trace id would otherwise become a Graphite series).
    route.tag "trace" :type "timer"              :passthrough "traces",

    -- switchyard's own statsd.* metrics (numStats, bad_lines_seen, ...).
    route.prefix "statsd."                       :to "carbon",

    -- Where it came from.
    route.tag("env", "dev")                      :to "console",
    route.sender "10.99.0.0/16"                  :to "console",      -- the lab network
    route.listener "tcp" :prefix "batch."        :to "redis",        -- batch jobs over TCP

    -- Renames.
    route.match "^legacy%.([%w_]+)%.(.+)$"       :rename "apps.%1.%2" :to { "carbon", "redis" },
    route.glob "svc.*.**"                        :rename "services.%1.%2" :to "carbon",
    route.prefix "cron."   :rename(function(m) return "jobs." .. m.name:sub(6):lower() end) :to "carbon",
    route.prefix "edge."                         :addprefix "cdn." :to "carbon",

    -- High-volume metrics, sampled: what is kept counts 1/rate times, so
    -- totals stay right.
    route.glob "api.*.latency"                   :sample(0.1) :to { "carbon", "redis" },
    route.prefix "clicks."                       :sample(0.25) :to "carbon",

    -- By type and by name.
    route.type "set"                             :to "redis",        -- unique users etc.
    route.type "gauge" :prefix "host."           :to { "carbon", "redis" },
    route.glob "*.*.errors"                      :to { "carbon", "redis", "console" },
    route.prefix "billing."                      :to { "carbon", "redis" },

    -- Everything else.
    route.default()                              :to "carbon",
  },

  -- Loading (and reloading) fails unless these hold, so a rule edited by
  -- mistake never reaches production.
  checks = {
    { "debug.cache.miss", drop = true },
    { "web.healthcheck.ok", drop = true },
    { "api.users.latency", type = "ms", to = { "carbon", "redis" } },
    { "api.req;trace=9f2c;root", type = "ms", to = {}, passthrough = { "traces" } },
    { "legacy.shop.orders", name = "apps.shop.orders", to = { "carbon", "redis" } },
    { "cron.NightlyBackup.duration", type = "ms", name = "jobs.nightlybackup.duration" },
    { "batch.import.rows", listener = "tcp://127.0.0.1:8125", to = { "redis" } },
    { "batch.import.rows", listener = "udp://127.0.0.1:8125", to = { "carbon" } },
    { "web.page.views", sender = "10.99.3.4", to = { "console" } },
    { "web.page.views", sender = "10.98.3.4", to = { "carbon" } },
    { "web.users", type = "s", to = { "redis" } },
    { "statsd.numStats", to = { "carbon" } },
  },
}

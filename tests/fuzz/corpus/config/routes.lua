local route = require "switchyard.route"
return {
  listen = { "udp://127.0.0.1:8125", { url = "tcp://127.0.0.1:8126", auth = true } },
  sinks = { carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
            local_console = { plugin = "console" }, traces = { plugin = "console" } },
  routes = {
    route.prefix "debug."                 :drop "debug metrics stay on the host",
    route.glob "api.*.latency"            :sample(0.1) :to "carbon",
    route.glob "a.**.b"                   :to "local_console",
    route.match "^legacy%.(.+)$"          :rename "apps.%1" :to { "carbon", "local_console" },
    route.tag("env", "dev")               :to "local_console",
    route.tag("env", { "a", "b" })        :to "carbon",
    route.tag "trace"                     :passthrough "traces",
    route.type "ms"                       :addprefix "t." :to "carbon",
    route.listener "tcp"                  :to "carbon",
    route.sender "10.0.0.0/8"             :to "carbon",
    route.when(function(m) return #m.name > 50 end) :drop "long",
    route.default()                       :to "carbon",
  },
  auth = { tokens = { s3cret = "tenant1", open = true,
                      ops = { namespace = "ops", senders = { "10.0.0.0/8", "192.168.1.7" } } } },
  checks = {
    { "debug.anything", drop = true },
    { "legacy.db.query", to = { "carbon", "local_console" }, name = "apps.db.query" },
  },
}

-- /etc/switchyard/switchyard.lua: the config the systemd unit runs.
-- Reload with `systemctl reload switchyard` (SIGHUP); check a change first
-- with `switchyard --check /etc/switchyard/switchyard.lua`.
-- Every option is described in /usr/share/doc/switchyard/README.md.
return {
  listen = { "udp://127.0.0.1:8125", "tcp://127.0.0.1:8125",
             { url = "unix:///run/switchyard/switchyard.sock", mode = "0660" } },
  flushInterval = 10000,
  percentThreshold = { 90 },
  graphite = { legacyNamespace = false, globalPrefix = "stats" },
  mgmt_port = 8126,
  httpAddress = "127.0.0.1:8127",
  sinks = {
    -- Point this at your carbon-cache or carbon-relay.
    carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
  },
}

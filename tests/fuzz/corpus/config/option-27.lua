return {
  listen = { { url = "udp://127.0.0.1:1", threads = 1e30, receiveBuffer = 1e30 } },
  sinks = { out = { plugin = "console" } },
}

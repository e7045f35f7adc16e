return {
  listen = { { url = "udp://[::1]:8125", receiveBuffer = 1048576, threads = 4 } },
  sinks = { out = { plugin = "console" } },
}

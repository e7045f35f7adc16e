return {
  servers = { { server = "./servers/tcp", address = "127.0.0.1", port = 8126 }, { server = "./servers/udp", address_ipv6 = true } },
  sinks = { out = { plugin = "console" } },
}

-- auth.lua - a switchyard config that takes metrics from other teams'
-- hosts over TCP, with a token in front of every line.
--
-- On the authenticated listener each line starts with a token and a dot:
--
--   k-shop-77c1.orders.placed:1|c     counted as shop.orders.placed
--
-- A line with a missing or unknown token, or a token used from an address
-- it is not allowed from, is refused (and counted in auth_rejected; the
-- log says so at a bounded rate).  A token's namespace is put in front of
-- every name it sends, so a team cannot write over another's metrics;
-- routing rules see the name with its namespace.  Tokens cannot contain
-- '.', ':' or '|'.
--
-- The UDP listener stays open to local clients without tokens.
--
-- Try it:
--   switchyard --check auth.lua
--   printf 'k-shop-77c1.orders.placed:1|c\n' | nc -q1 127.0.0.1 8126
--   spec/auth_spec.lua                      acceptance, refusal, namespaces
local route = require "switchyard.route"

return {
  listen = {
    "udp://127.0.0.1:8125",                       -- local, no token
    { url = "tcp://0.0.0.0:8126", auth = true },  -- "TOKEN.name:value|type"
  },
  flushInterval = 10000,
  graphite = { legacyNamespace = false },

  sinks = {
    carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 },
    redis = { plugin = "redis", host = "127.0.0.1", port = 6379 },
  },

  auth = {
    tokens = {
      -- the operations team: any address, names as sent
      ["k-ops-3f9a"] = true,
      -- the shop: any address, names under shop.
      ["k-shop-77c1"] = "shop",
      -- billing: only from its own network and one admin host
      ["k-billing-19be"] = { namespace = "billing", senders = { "10.20.0.0/16", "192.168.1.7" } },
    },
  },

  routes = {
    route.prefix "shop.debug."   :drop "the shop's debug metrics are not kept",
    route.prefix "billing."      :to { "carbon", "redis" },
    route.default()              :to "carbon",
  },

  checks = {
    { "shop.debug.cart", drop = true },
    { "billing.invoices.sent", to = { "carbon", "redis" } },
    { "shop.orders.placed", to = { "carbon" } },
  },
}

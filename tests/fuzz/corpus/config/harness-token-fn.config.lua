-- The token harness's second config: auth as a function, answering every
-- shape the core must cope with (no namespace, long ones, a number, an
-- error, a refusal).
return {
  listen = {
    "udp://127.0.0.1:8125",
    { url = "tcp://127.0.0.1:8126", auth = true },
  },
  flushInterval = 1000,
  deleteIdleStats = true,
  timerSampleLimit = 4,
  maxKeys = 50000,
  graphite = { legacyNamespace = true },
  sinks = { carbon = { plugin = "graphite", host = "127.0.0.1", port = 2003 } },
  auth = function(token, sender, listener)
    if token == "fn" then return true, "fnspace" end
    if token == "bare" then return true end
    if token == "edge" then return true, string.rep("e", 254) end
    if token == "over" then return true, string.rep("o", 255) end
    if token == "num" then return true, 42 end
    if token == "tbl" then return true, {} end
    if token == "err" then error("refused by raising") end
    if token == "ten" then return sender:sub(1, 3) == "10.", "ten" end
    -- a namespace made from the token, cleaned as a careful config would
    if token:sub(1, 3) == "ok_" then return true, (token:sub(4):gsub("[^%w_-]", "_")) end
    return false
  end,
}

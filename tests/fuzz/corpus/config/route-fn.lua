return {
  sinks = { a = { plugin = "console" }, b = { plugin = "console" } },
  route = function(m)
    if m.name:sub(1, 4) == "drop" then return false end
    if m.tags.env then return { sinks = { "a" }, name = "env." .. m.name, sample = 0.5 } end
    if m.type == "s" then return { passthrough = { "b" } } end
    return nil
  end,
  auth = function(token, sender, listener) return token == "ok", "ns" end,
}

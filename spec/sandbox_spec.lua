-- A config cannot undo the bounds of its own calls: the instruction hook
-- (luaTimeout, the setup limit) and the JIT being off (hooks do not run
-- in compiled traces).  jit.on and debug.sethook refuse to run in a config
-- state, in setup and in routing hooks alike.  Through switchyard.testing,
-- i.e. the core in build/libswitchyard.so.

local testing = require "switchyard.testing"

testing.log_level("error")

local function config(body)
  return [[
local route = require "switchyard.route"
]] .. body .. [[
return {
  listen = { "udp://127.0.0.1:8125" },
  luaTimeout = 100,
  sinks = { a = { plugin = "console" }, b = { plugin = "console" } },
  route = function(m)
    if m.name == "escape" then jit.on(); while true do end end
    return { sinks = { "b" } }
  end,
}
]]
end

describe("a config's own bounds", function()
  for _, call in ipairs({ "jit.on()", "debug.sethook()", "require('jit').on()" }) do
    it("refuse " .. call .. " in setup", function()
      local ok, err = pcall(testing.load_source, config(call .. "\n"), "escape.lua")
      assert.is_false(ok)
      assert.matches("is not available in a switchyard config", tostring(err))
    end)
  end

  it("refuse jit.on() in a routing hook: the key takes the default route", function()
    local router = testing.load_source(config(""), "hook.lua")
    router:send({ "escape:1|c", "other:1|c" })
    assert.are.equal(1, router:stat("route_errors"))
    local f = router:flush()
    assert.are.same({ "a", "b" }, f:where("stats_counts.escape"))
    assert.are.same({ "b" }, f:where("stats_counts.other"))
    router:close()
  end)
end)

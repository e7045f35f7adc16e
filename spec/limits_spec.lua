-- Per-key bounds in the real core: the longest key, and the members a set
-- counts exactly in one interval (setMemberLimit) before it estimates.

local testing = require "switchyard.testing"

testing.log_level("error") -- refused lines and estimated sets are expected here

local function load(extra)
  return testing.load_source([[
    return { listen = { "udp://127.0.0.1:19101" }, sinks = { c = { plugin = "console" } },
             graphite = { legacyNamespace = false }, ]] .. (extra or "") .. [[ }]], "limits")
end

describe("keys", function()
  local router
  after_each(function() router:close() end)

  it("accept a 1,100-character URL in a tag (statsd does; 1024 was the old limit)", function()
    router = load()
    local url = "/" .. string.rep("a", 1099)
    router:send("api.req:12|ms|#trace:9f2c,root,path:" .. url)
    local flush = router:flush()
    -- sanitised: the '/' of the URL becomes '-'
    local counts = flush:names("c", "^stats%.timers%.api%.req%.count;")
    assert.are.equal(1, #counts)
    assert.is_truthy(counts[1]:find(url:sub(2), 1, true))
    assert.are.equal(0, router:stat("bad_lines"))
    assert.are.equal(0, router:stat("keys_too_long"))
  end)

  it("are refused at 8192 bytes, tags included, and counted on their own", function()
    router = load()
    local keys0 = router:stat("keys")
    local ok = string.rep("k", 8000) .. ":1|c|#" .. string.rep("t", 8191 - 8000 - 1)
    local long = string.rep("k", 8000) .. ":1|c|#" .. string.rep("t", 8192 - 8000 - 1)
    router:send({ ok, long, string.rep("x", 100000) .. ":1|c" })
    router:flush()
    assert.are.equal(2, router:stat("keys_too_long"))
    assert.are.equal(2, router:stat("bad_lines"))
    assert.are.equal(keys0 + 1, router:stat("keys"))
  end)
end)

describe("sets", function()
  local router
  after_each(function() router:close() end)

  local function members(from, to, name)
    local lines = {}
    for i = from, to do lines[#lines + 1] = (name or "users") .. ":m" .. i .. "|s" end
    return table.concat(lines, "\n")
  end

  it("count exactly up to setMemberLimit", function()
    router = load("setMemberLimit = 1000,")
    router:send(members(1, 1000))
    router:send(members(1, 1000)) -- repeats do not count
    local flush = router:flush()
    assert.are.equal(1000, flush:value("c", "stats.sets.users.count"))
    assert.are.equal(0, router:stat("sets_estimated"))
  end)

  it("estimate past it, within 3% (HyperLogLog, 0.8% standard error), and say so", function()
    router = load("setMemberLimit = 1000,")
    for i = 0, 49 do router:send(members(i * 1000 + 1, (i + 1) * 1000)) end
    router:send(members(1, 5000)) -- repeats still do not count
    local flush = router:flush()
    local n = flush:value("c", "stats.sets.users.count")
    assert.is_true(math.abs(n - 50000) / 50000 < 0.03, "estimated " .. tostring(n))
    assert.are.equal(1, router:stat("sets_estimated"))
    -- the next interval starts exact again
    router:send(members(1, 10, "users"))
    flush = router:flush()
    assert.are.equal(10, flush:value("c", "stats.sets.users.count"))
  end)

  it("never estimate below the members counted exactly", function()
    router = load("setMemberLimit = 1000,")
    router:send(members(1, 1001))
    local n = router:flush():value("c", "stats.sets.users.count")
    assert.is_true(n >= 1000 and n <= 1030, "estimated " .. tostring(n))
  end)

  it("count every member with setMemberLimit = 0", function()
    router = load("setMemberLimit = 0,")
    for i = 0, 19 do router:send(members(i * 1000 + 1, (i + 1) * 1000)) end
    assert.are.equal(20000, router:flush():value("c", "stats.sets.users.count"))
    assert.are.equal(0, router:stat("sets_estimated"))
  end)
end)

-- examples/sampling.lua through the real core: sampled totals stay near
-- what was sent (what is kept counts 1/rate times), and a seed makes a run
-- exactly reproducible.

local testing = require "switchyard.testing"

local EXAMPLE = testing.lua_dir .. "/switchyard/examples/sampling.lua"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The example with another sampleSeed.
local function with_seed(seed)
  local source, n = read(EXAMPLE):gsub("sampleSeed = %d+", "sampleSeed = " .. seed)
  assert(n == 1, "sampling.lua should set sampleSeed once")
  return testing.load_source(source, "sampling.lua (seed " .. seed .. ")")
end

local KEYS, PER_KEY = 1000, 50

-- PER_KEY samples of 1 for each of KEYS click counters: the per-key
-- counts received by carbon, and their total.
local function send_clicks(router, suffix)
  for k = 1, KEYS do
    router:send(string.rep("clicks.k" .. k .. ":1|c" .. (suffix or ""), PER_KEY, "\n"))
  end
  local flush = router:flush()
  local counts, total = {}, 0
  for k = 1, KEYS do
    local c = flush:value("carbon", "stats.counters.clicks.k" .. k .. ".count")
    counts[k] = c or 0
    total = total + (c or 0)
  end
  return counts, total, flush
end

describe("examples/sampling.lua", function()
  local router

  before_each(function() router = testing.load(EXAMPLE) end)
  after_each(function() router:close() end)

  it("keeps one click in ten and counts it ten times", function()
    local counts, total = send_clicks(router)
    local sent = KEYS * PER_KEY
    local kept = sent - router:stat("sampled_out")
    assert.are.equal(10 * kept, total)
    for k = 1, KEYS do assert.are.equal(0, counts[k] % 10) end
    -- about a tenth kept (binomial: sd ~ 67 samples, so 5% is ~3.7 sd)
    assert.is_true(math.abs(total - sent) < 0.05 * sent,
                   string.format("sent %d, carbon got %d in all", sent, total))
  end)

  it("is unbiased: over several seeds the mean total is the sent total", function()
    local sent, sum, seeds = KEYS * PER_KEY, 0, { 1, 2, 3, 4, 5, 6, 7, 8 }
    local totals = {}
    for _, seed in ipairs(seeds) do
      local r = with_seed(seed)
      local _, total = send_clicks(r)
      r:close()
      totals[#totals + 1] = total
      sum = sum + total
    end
    local mean = sum / #seeds
    -- sd of one total ~ 670, of the mean of eight ~ 240
    assert.is_true(math.abs(mean - sent) < 0.02 * sent,
                   "totals " .. table.concat(totals, ", ") .. " for " .. sent .. " sent")
  end)

  it("keeps the same samples for the same seed and traffic", function()
    local a = send_clicks(router)
    local again = testing.load(EXAMPLE)
    local b = send_clicks(again)
    again:close()
    assert.are.same(a, b)
    local other = with_seed(99)
    local c = send_clicks(other)
    other:close()
    assert.are_not.same(a, c)
  end)

  it("scales a client's own @rate too", function()
    local _, total = send_clicks(router, "|@0.5")
    local kept = KEYS * PER_KEY - router:stat("sampled_out")
    assert.are.equal(20 * kept, total)
    local sent = 2 * KEYS * PER_KEY -- what the client stands for
    assert.is_true(math.abs(total - sent) < 0.05 * sent, "total " .. total)
  end)

  it("timers: count and count_ps are scaled, the statistics come from what was kept", function()
    local lines = {}
    for v = 1, 4000 do lines[v] = "api.users.latency:" .. v .. "|ms" end
    router:send(table.concat(lines, "\n"))
    local t = router:flush():sink("carbon")
    local p = "stats.timers.api.users.latency."
    local kept = 4000 - router:stat("sampled_out")
    assert.are.equal(4 * kept, t[p .. "count"])
    assert.are.equal(4 * kept / 10, t[p .. "count_ps"])
    assert.is_true(math.abs(t[p .. "count"] - 4000) < 400, "count " .. t[p .. "count"])
    assert.is_true(math.abs(t[p .. "mean"] - 2000.5) < 150, "mean " .. t[p .. "mean"])
    assert.is_true(t[p .. "upper"] <= 4000 and t[p .. "lower"] >= 1)
    assert.is_true(t[p .. "count_90"] < kept) -- percentiles over the kept samples
  end)

  it("leaves other metrics alone", function()
    router:send(string.rep("web.hits:1|c", 1000, "\n"))
    local flush = router:flush()
    assert.are.equal(1000, flush:value("carbon", "stats.counters.web.hits.count"))
    assert.are.equal(0, router:stat("sampled_out"))
  end)
end)

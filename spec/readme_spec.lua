-- Every full config in README.md loads: each ```lua block with a line
-- starting with `return {` (a whole config file, perhaps after its
-- `local route = require ...` lines) is written to a file and loaded
-- through the real core, its checks included, then fed a counter and a
-- timer and flushed once: the values must be statsd's.
-- Fragments (a routes list, a single rule) are not configs and are skipped.

local testing = require "switchyard.testing"

local README = os.getenv("SWITCHYARD_README") or "README.md"

-- The full configs in `text`: { { line = where the block starts, source = ... } }.
local function configs(text)
  local list, n, block, start = {}, 0, nil, nil
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    if block then
      if line:match("^%s*```%s*$") then
        local source = table.concat(block, "\n") .. "\n"
        if source:find("^return%s*{") or source:find("\nreturn%s*{") then
          list[#list + 1] = { line = start, source = source }
        end
        block = nil
      else
        block[#block + 1] = line
      end
    elseif line:match("^%s*```%s*lua%s*$") then
      block, start = {}, n + 1
    end
  end
  return list
end

local f = io.open(README, "rb")
local text = f and f:read("*a")
if f then f:close() end

describe("README.md", function()
  it("exists and holds at least one full config", function()
    assert(text, README .. " missing: the README's config examples cannot be tested")
    assert(#configs(text) > 0, README .. " has no ```lua block with a full config (`return { ... }`)")
  end)

  for _, ex in ipairs(text and configs(text) or {}) do
    it("the config at line " .. ex.line .. " loads and flushes", function()
      local name = README .. " block at line " .. ex.line
      local ok, router = pcall(testing.load_source, ex.source, name)
      assert(ok, "the README's config at line " .. ex.line .. " does not load: " .. tostring(router))
      -- Three samples of one counter and one timer: every sink the config
      -- routes them to gets the count 3 and the timer's statistics, under
      -- the config's naming, and at least one sink gets them (none of the
      -- README's configs drops an ordinary key).
      router:send("readme.example:1|c\nreadme.example:2|c|@0.5\nreadme.timer:4|ms\nreadme.timer:8|ms")
      local flush = router:flush()
      local counted, timed = {}, {}
      for _, sink in ipairs(flush.sink_order) do
        for _, name in ipairs(flush:names(sink, "readme%.example")) do
          local v = flush:value(sink, name)
          -- the count (1 + 2/0.5) and the rate per second of the interval
          if name:find("%.count$") or name:find("^stats_counts%.") then
            assert.are.equal(5, v, name .. " at " .. sink)
            counted[#counted + 1] = sink
          elseif name:find("%.rate$") or name:find("^stats%.readme") then
            local interval = (router.config.flushInterval or 10000) / 1000
            assert.are.equal(5 / interval, v, name .. " at " .. sink)
          end
        end
        -- a pass-through sink gets the samples as sent, rate included
        local raw = {}
        for _, r in ipairs(flush:raw(sink)) do
          raw[#raw + 1] = r.name .. ":" .. r.value .. "|" .. r.type .. "@" .. r.rate
        end
        if #raw > 0 then
          assert.are.same({ "readme.example:1|c@1", "readme.example:2|c@0.5", "readme.timer:4|ms@1",
                            "readme.timer:8|ms@1" }, raw, "raw samples at " .. sink)
          counted[#counted + 1] = sink
          timed[#timed + 1] = sink
        end
        for _, name in ipairs(flush:names(sink, "readme%.timer%.")) do
          local v = flush:value(sink, name)
          local stat = name:match("readme%.timer%.([%w_]+)$") or ""
          local want = ({ count = 2, lower = 4, upper = 8, mean = 6, sum = 12, median = 6,
                          sum_squares = 80, std = 2 })[stat]
          if want then
            assert.are.equal(want, v, name .. " at " .. sink)
            timed[#timed + 1] = sink
          end
        end
      end
      assert(#counted > 0, "no sink received readme.example's count:\n" .. tostring(flush))
      assert(#timed > 0, "no sink received readme.timer's statistics:\n" .. tostring(flush))
      router:close()
    end)
  end
end)

-- Every full config in README.md loads: each ```lua block with a line
-- starting with `return {` (a whole config file, perhaps after its
-- `local route = require ...` lines) is written to a file and loaded
-- through the real core, its checks included, then flushed once.
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
      router:send("readme.example:1|c")
      local flush = router:flush()
      assert.are.equal("table", type(flush:names(router.config.sink_order[1])))
      router:close()
    end)
  end
end)

-- switchyard.route on its own: conditions, actions and the compiler, in
-- plain Lua (no core library needed).

local route = require "switchyard.route"

local BITS = { a = 1, b = 2, c = 4 }
local ORDER = { "a", "b", "c" }

local function names_of(mask)
  local list = {}
  for i, name in ipairs(ORDER) do
    if math.floor(mask / 2 ^ (i - 1)) % 2 == 1 then list[#list + 1] = name end
  end
  return list
end

-- What the compiled rules decide for one key, as a table.
local function decide(rules, key, opts)
  opts = opts or {}
  local fn = route.compile(rules, BITS)
  local drop, sinks, raw, newkey, rate = fn(key, opts.type or "c", opts.listener or "", opts.sender or "")
  return { drop = drop, to = names_of(sinks), raw = names_of(raw), name = newkey or key, rate = rate }
end

-- Whether a single rule with `cond` sends `key` to "a" (the default goes to "c").
local function matches(rule, key, opts)
  return decide({ rule:to "a", route.default():to "c" }, key, opts).to[1] == "a"
end

local function compile_error(rules)
  local ok, err = pcall(route.compile, rules, BITS)
  assert.is_false(ok)
  return err
end

describe("route.glob", function()
  it("* matches one dot-free part", function()
    local r = route.glob "api.*.latency"
    assert.is_true(matches(r, "api.users.latency"))
    assert.is_true(matches(r, "api..latency"))
    assert.is_false(matches(r, "api.users.v2.latency"))
  end)

  it("is anchored at both ends", function()
    local r = route.glob "api.*.latency"
    assert.is_false(matches(r, "xapi.users.latency"))
    assert.is_false(matches(r, "api.users.latency.p99"))
    assert.is_false(matches(r, "api.users.latencyx"))
  end)

  it("** matches across dots", function()
    assert.is_true(matches(route.glob "api.**", "api.a.b.c"))
    assert.is_true(matches(route.glob "api.**.count", "api.x.y.count"))
    assert.is_false(matches(route.glob "api.**.count", "api.count"))
  end)

  it("takes every other character literally", function()
    local r = route.glob "a-b+c.(x)%[y]"
    assert.is_true(matches(r, "a-b+c.(x)%[y]"))
    assert.is_false(matches(r, "a-bbc.(x)%[y]"))
    assert.is_false(matches(route.glob "a.b", "aXb"))
  end)

  it("looks at the name, not the tags", function()
    assert.is_true(matches(route.glob "api.*", "api.req;env=prod"))
  end)

  it("gives its stars to rename as captures", function()
    local d = decide({ route.glob "legacy.*.**" :rename "apps.%1.%2" :to "a" }, "legacy.shop.orders.count")
    assert.are.equal("apps.shop.orders.count", d.name)
    d = decide({ route.glob "a.**.**.*" :rename "%3/%2/%1/%0/%%" :to "a" }, "a.b.c.d.e")
    assert.are.equal("e/c.d/b/a.b.c.d.e/%", d.name)
  end)

  -- The captures a backtracking matcher finds first, for `*` as ([^.]*)
  -- and `**` as (.-): what rename has always used.
  local function reference(glob, s)
    local pat, i = { "^" }, 1
    while i <= #glob do
      local c = glob:sub(i, i)
      if c == "*" and glob:sub(i + 1, i + 1) == "*" then pat[#pat + 1] = "(.-)"; i = i + 1
      elseif c == "*" then pat[#pat + 1] = "([^.]*)"
      else pat[#pat + 1] = c:gsub("%p", "%%%0") end
      i = i + 1
    end
    pat = table.concat(pat) .. "$"
    if not s:match(pat) then return nil end
    return glob:find("*", 1, true) and { s:match(pat) } or {}
  end

  -- A new seed each run (SY_SEED replays one), shown with any difference.
  local seed = tonumber(os.getenv("SY_SEED")) or os.time()
  it("finds the same matches and captures as a backtracking matcher (50,000 random cases)", function()
    math.randomseed(seed)
    local parts, chars = { "a", "b", ".", "*", "**" }, { "a", "b", "." }
    for _ = 1, 50000 do
      local g, s = {}, {}
      for _ = 1, math.random(0, 7) do g[#g + 1] = parts[math.random(#parts)] end
      for _ = 1, math.random(0, 9) do s[#s + 1] = chars[math.random(#chars)] end
      g, s = table.concat(g), table.concat(s)
      local want, got = reference(g, s), route.glob_captures(g, s)
      assert.are.same(want, got, string.format("glob %q on %q (seed %d: SY_SEED=%d replays it)",
                                               g, s, seed, seed))
    end
  end)

  it("takes time linear in the key, whatever the stars", function()
    -- Written as a Lua pattern, this glob backtracks for hours on this key.
    local key = ("a"):rep(20000) .. ".b.x"
    local t = os.clock()
    assert.is_nil(route.glob_captures("**.**.**.**.x", key))
    assert.is_false(matches(route.glob "**.*.**.**.x", key))
    local caps = route.glob_captures("**.**.**.**.x", ("a."):rep(10000) .. "x")
    assert.is_true(#caps == 4 and caps[1] == "a" and caps[3] == "a" and caps[4] == ("a."):rep(9996) .. "a",
                   "the captures of the shortest ** first")
    assert.is_true(os.clock() - t < 5, "took " .. (os.clock() - t) .. " s")
  end)
end)

describe("route.sender", function()
  it("matches an IPv4 CIDR block", function()
    local r = route.sender "10.0.0.0/8"
    assert.is_true(matches(r, "k", { sender = "10.0.0.0" }))
    assert.is_true(matches(r, "k", { sender = "10.255.1.2" }))
    assert.is_false(matches(r, "k", { sender = "11.0.0.1" }))
    assert.is_false(matches(r, "k", { sender = "9.255.255.255" }))
  end)

  it("matches the block a non-aligned address lies in", function()
    local r = route.sender "192.168.1.77/24"
    assert.is_true(matches(r, "k", { sender = "192.168.1.1" }))
    assert.is_true(matches(r, "k", { sender = "192.168.1.255" }))
    assert.is_false(matches(r, "k", { sender = "192.168.2.1" }))
  end)

  it("treats a plain address as /32, and /0 as every IPv4 address", function()
    assert.is_true(matches(route.sender "192.168.1.7", "k", { sender = "192.168.1.7" }))
    assert.is_false(matches(route.sender "192.168.1.7", "k", { sender = "192.168.1.8" }))
    assert.is_true(matches(route.sender "0.0.0.0/0", "k", { sender = "203.0.113.9" }))
    assert.is_false(matches(route.sender "0.0.0.0/0", "k", { sender = "::1" }))
  end)

  it("needs a sender", function()
    assert.is_false(matches(route.sender "10.0.0.0/8", "k", { sender = "" }))
    assert.is_false(matches(route.sender "10.0.0.0/8", "k", { sender = "10.0.0.256" }))
  end)

  it("compares IPv6 addresses as text", function()
    assert.is_true(matches(route.sender "::1", "k", { sender = "::1" }))
    assert.is_false(matches(route.sender "::1", "k", { sender = "::2" }))
  end)

  it("refuses a prefix length over 32", function()
    assert.has_error(function() route.sender "10.0.0.0/33" end)
  end)
end)

describe("route.tag", function()
  it("holds when the tag is present, with or without a value", function()
    assert.is_true(matches(route.tag "root", "api.req;trace=1;root"))
    assert.is_true(matches(route.tag "trace", "api.req;trace=1;root"))
    assert.is_false(matches(route.tag "trace", "api.req;root"))
    assert.is_false(matches(route.tag "api", "api.req"))
  end)

  it("compares a value exactly", function()
    assert.is_true(matches(route.tag("env", "prod"), "k;env=prod"))
    assert.is_false(matches(route.tag("env", "prod"), "k;env=prod2"))
    assert.is_false(matches(route.tag("env", "prod"), "k;env"))
    assert.is_true(matches(route.tag("shard", 3), "k;shard=3"))
  end)

  it("accepts one of a list of values", function()
    local r = route.tag("env", { "prod", "stage" })
    assert.is_true(matches(r, "k;env=stage"))
    assert.is_true(matches(r, "k;a=1;env=prod;b=2"))
    assert.is_false(matches(r, "k;env=dev"))
    assert.is_false(matches(r, "k;env"))
  end)
end)

describe("route.split_key", function()
  it("splits a key into its name and Graphite tags", function()
    local name, tags = route.split_key "api.req;env=prod;root;path=a=b"
    assert.are.equal("api.req", name)
    assert.are.same({ env = "prod", root = true, path = "a=b" }, tags)
    assert.are.same({}, select(2, route.split_key "plain"))
  end)
end)

describe("other conditions", function()
  it("prefix compares the start of the name", function()
    assert.is_true(matches(route.prefix "debug.", "debug.x"))
    assert.is_false(matches(route.prefix "debug.", "debugx"))
    assert.is_false(matches(route.prefix "debug.", "x.debug.y"))
  end)

  it("match takes a Lua pattern, unanchored unless written so", function()
    assert.is_true(matches(route.match "%.errors$", "api.errors"))
    assert.is_true(matches(route.match "err", "api.errors"))
    assert.is_false(matches(route.match "^err", "api.errors"))
    assert.has_error(function() route.match "([" end)
  end)

  it("type knows statsd's letters and the long names", function()
    assert.is_true(matches(route.type "timer", "k", { type = "ms" }))
    assert.is_true(matches(route.type "ms", "k", { type = "ms" }))
    assert.is_true(matches(route.type "h", "k", { type = "ms" }))
    assert.is_true(matches(route.type "counter", "k", { type = "c" }))
    assert.is_false(matches(route.type "gauge", "k", { type = "c" }))
    assert.is_true(matches(route.type "set", "k", { type = "s" }))
    assert.has_error(function() route.type "histogramme" end)
  end)

  it("listener matches the kind or the whole URL", function()
    local tcp = "tcp://127.0.0.1:8125"
    assert.is_true(matches(route.listener "tcp", "k", { listener = tcp }))
    assert.is_true(matches(route.listener(tcp), "k", { listener = tcp }))
    assert.is_false(matches(route.listener "udp", "k", { listener = tcp }))
    assert.is_false(matches(route.listener "tcp", "k", { listener = "" }))
  end)

  it("when runs a function of the metric", function()
    local seen
    local r = route.when(function(m) seen = m; return m.type == "g" end)
    assert.is_true(matches(r, "k;x=1", { type = "g", listener = "udp://h:1", sender = "10.0.0.1" }))
    assert.are.same({ key = "k;x=1", name = "k", tags = { x = "1" }, tagtext = ";x=1", type = "g",
                      listener = "udp://h:1", sender = "10.0.0.1" }, seen)
  end)

  it("chained conditions must all hold", function()
    local r = route.prefix "batch." :listener "tcp" :type "c"
    local tcp = "tcp://127.0.0.1:8125"
    assert.is_true(matches(r, "batch.rows", { listener = tcp }))
    assert.is_false(matches(r, "batch.rows", { listener = "udp://127.0.0.1:8125" }))
    assert.is_false(matches(r, "batch.rows", { listener = tcp, type = "g" }))
    assert.is_false(matches(r, "other.rows", { listener = tcp }))
  end)
end)

describe("actions", function()
  it("to and passthrough name sinks; the first matching rule decides", function()
    local rules = {
      route.prefix "x." :to { "a", "b" },
      route.prefix "x.y" :to "c",
      route.prefix "t." :passthrough "c",
      route.prefix "u." :passthrough("b", "c") :to "a",
    }
    assert.are.same({ "a", "b" }, decide(rules, "x.y").to)
    local t = decide(rules, "t.span")
    assert.are.same({}, t.to)
    assert.are.same({ "c" }, t.raw)
    local u = decide(rules, "u.span")
    assert.are.same({ "a" }, u.to)
    assert.are.same({ "b", "c" }, u.raw)
  end)

  it("drop gives a reason", function()
    assert.are.equal("noise", decide({ route.prefix "d." :drop "noise" }, "d.x").drop)
    assert.are.equal("dropped by a rule", decide({ route.prefix "d." :drop() }, "d.x").drop)
    assert.is_nil(decide({ route.prefix "d." :drop() }, "e.x").drop)
  end)

  it("sample gives a rate in (0, 1]", function()
    assert.are.equal(0.25, decide({ route.prefix "c." :sample(0.25) :to "a" }, "c.x").rate)
    assert.are.equal(1, decide({ route.prefix "c." :to "a" }, "c.x").rate)
    assert.has_error(function() route.prefix "c." :sample(0) end)
    assert.has_error(function() route.prefix "c." :sample(1.5) end)
    assert.has_error(function() route.prefix "c." :sample "half" end)
  end)

  it("rename uses the match's captures and keeps the tags", function()
    local rules = { route.match "^legacy%.(.+)$" :rename "apps.%1" :to "a" }
    assert.are.equal("apps.shop.orders", decide(rules, "legacy.shop.orders").name)
    assert.are.equal("apps.shop.orders;env=prod", decide(rules, "legacy.shop.orders;env=prod").name)
  end)

  it("rename takes a fixed name or a function", function()
    assert.are.equal("fixed", decide({ route.prefix "a." :rename "fixed" :to "a" }, "a.b;t=1").name:match("^[^;]*"))
    local fn = route.prefix "cron." :rename(function(m) return m.name:upper() end) :to "a"
    assert.are.equal("CRON.JOB", decide({ fn }, "cron.job").name)
    local bad = route.prefix "cron." :rename(function() return "" end) :to "a"
    assert.has_error(function() decide({ bad }, "cron.job") end)
  end)

  it("addprefix puts text in front of the (renamed) name", function()
    assert.are.equal("cdn.edge.hits", decide({ route.prefix "edge." :addprefix "cdn." :to "a" }, "edge.hits").name)
  end)

  it("a key no rule matches takes route.default(), or every sink without one", function()
    assert.are.same({ "b" }, decide({ route.prefix "x." :to "a", route.default() :to "b" }, "y").to)
    assert.are.same({ "a", "b", "c" }, decide({ route.prefix "x." :to "a" }, "y").to)
    assert.are.same({ "a", "b", "c" }, decide({}, "y").to)
  end)

  it("route.default() may come first: it is tried last", function()
    assert.are.same({ "a" }, decide({ route.default() :to "b", route.prefix "x." :to "a" }, "x.1").to)
  end)
end)

describe("route.compile", function()
  it("refuses an unknown sink, naming the rule", function()
    local err = compile_error({ route.prefix "a." :to "a", route.prefix "b." :to { "a", "nowhere" } })
    assert.are.equal("routes[2]: no sink named 'nowhere'", err)
    assert.are.equal("routes[1]: no sink named 'x'", compile_error({ route.prefix "t." :passthrough "x" }))
  end)

  it("refuses a rule without an action", function()
    assert.are.equal("routes[1]: a rule needs :to(...), :passthrough(...) or :drop()",
                     compile_error({ route.prefix "a." }))
    assert.are.equal("routes[2]: a rule needs :to(...), :passthrough(...) or :drop()",
                     compile_error({ route.prefix "a." :to "a", route.default() }))
  end)

  it("refuses a second default", function()
    assert.are.equal("routes[3]: a second route.default()",
                     compile_error({ route.default() :to "a", route.prefix "x." :to "b", route.default() :to "c" }))
  end)

  it("refuses what is not a rule", function()
    assert.are.equal("routes[1]: not a rule (build rules with route.prefix, route.glob, ...)",
                     compile_error({ { prefix = "a." } }))
  end)

  it("says whether any rule looks at the origin", function()
    local _, by_name = route.compile({ route.prefix "a." :to "a" }, BITS)
    local _, by_sender = route.compile({ route.prefix "a." :to "a", route.sender "10.0.0.0/8" :to "b" }, BITS)
    local _, by_listener = route.compile({ route.listener "tcp" :to "b" }, BITS)
    assert.is_false(by_name)
    assert.is_true(by_sender)
    assert.is_true(by_listener)
  end)
end)

describe("route.compile_auth", function()
  local authorize = route.compile_auth({ tokens = {
    open = true,
    t1 = "tenant1",
    t9 = { namespace = "t9", senders = { "10.0.0.0/8", "192.168.1.7" } },
  } })

  it("accepts known tokens and gives their namespace", function()
    assert.are.same({ true }, { authorize("open", "1.2.3.4") })
    assert.are.same({ true, "tenant1" }, { authorize("t1", "") })
    assert.are.same({ false }, { authorize("nope", "1.2.3.4") })
  end)

  it("limits a token to its senders", function()
    assert.are.same({ true, "t9" }, { authorize("t9", "10.1.2.3") })
    assert.are.same({ true, "t9" }, { authorize("t9", "192.168.1.7") })
    assert.are.same({ false }, { authorize("t9", "192.168.1.8") })
    assert.are.same({ false }, { authorize("t9", "") })
  end)

  it("refuses tokens that could not be told from a name", function()
    for _, bad in ipairs({ "a.b", "a:b", "a|b", "" }) do
      assert.has_error(function() route.compile_auth({ tokens = { [bad] = true } }) end)
    end
    assert.has_error(function() route.compile_auth({ tokens = { ok = 42 } }) end)
    assert.has_error(function() route.compile_auth({ users = {} }) end)
  end)

  it("passes a function through", function()
    local fn = function() return true end
    assert.are.equal(fn, route.compile_auth(fn))
  end)
end)

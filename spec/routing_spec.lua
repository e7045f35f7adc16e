-- examples/routing.lua through the real core: which sink gets what, under
-- which name, with which value.

local testing = require "switchyard.testing"

testing.log_level("error") -- bad lines and refused tokens are expected here

local EXAMPLE = testing.lua_dir .. "/switchyard/examples/routing.lua"
local TCP, UDP = "tcp://127.0.0.1:8125", "udp://127.0.0.1:8125"

describe("examples/routing.lua", function()
  local router

  before_each(function() router = testing.load(EXAMPLE) end)
  after_each(function() router:close() end)

  -- The sinks that got the counter `key` (its .count; tags come last:
  -- stats.counters.NAME.count;TAGS).
  local function where(flush, key)
    local name, tags = key:match("^([^;]*)(.*)$")
    return flush:where("stats.counters." .. name .. ".count" .. tags)
  end

  describe("drops", function()
    it("debug metrics and load balancer probes, counting them", function()
      router:send({ "debug.cache.miss:1|c", "web.healthcheck.ok:1|c", "web.healthcheck.lb.a:1|ms",
                    "web.ok:1|c" })
      local flush = router:flush()
      assert.are.same({}, where(flush, "debug.cache.miss"))
      assert.are.same({}, where(flush, "web.healthcheck.ok"))
      assert.are.same({}, flush:names("carbon", "healthcheck"))
      assert.are.same({ "carbon" }, where(flush, "web.ok"))
      assert.are.equal(3, router:stat("dropped"))
    end)

    it("test and CI traffic by its env tag", function()
      router:send({ "web.hits:1|c|#env:ci", "web.hits:1|c|#env:test", "web.hits:1|c|#env:prod" })
      local flush = router:flush()
      assert.are.same({}, where(flush, "web.hits;env=ci"))
      assert.are.same({ "carbon" }, where(flush, "web.hits;env=prod"))
      assert.are.equal(2, router:stat("dropped"))
    end)

    it("names over 200 bytes", function()
      local long = "web." .. string.rep("x", 200)
      router:send({ long .. ":1|c", "web.short:1|c" })
      local flush = router:flush()
      assert.are.same({}, flush:names("carbon", "xxxx"))
      assert.are.equal(1, router:stat("dropped"))
    end)
  end)

  describe("traces", function()
    it("passes spans through raw, tags intact, without aggregating them", function()
      router:send({ "api.req:120|ms|#trace:9f2c,root,method:GET,path:/x",
                    "db.query:5|ms|@0.5|#trace:9f2c,off:1" })
      local flush = router:flush()
      assert.are.same({
        { name = "api.req;trace=9f2c;root;method=GET;path=-x", value = "120", type = "ms", rate = 1,
          tags = "trace:9f2c,root,method:GET,path:/x" },
        { name = "db.query;trace=9f2c;off=1", value = "5", type = "ms", rate = 0.5,
          tags = "trace:9f2c,off:1" },
      }, flush:raw("traces"))
      for _, sink in ipairs({ "carbon", "redis", "console", "traces" }) do
        assert.are.same({}, flush:names(sink, "api%.req"))
        assert.are.same({}, flush:names(sink, "db%.query"))
      end
      assert.are.same({}, flush:raw("carbon"))
      -- raw samples go out once
      assert.are.same({}, router:flush():raw("traces"))
    end)

    it("only for timers: a counter with a trace tag is a metric", function()
      router:send("api.hits:1|c|#trace:9f2c")
      local flush = router:flush()
      assert.are.same({}, flush:raw("traces"))
      assert.are.same({ "carbon" }, where(flush, "api.hits;trace=9f2c"))
    end)
  end)

  describe("by origin", function()
    it("dev traffic goes to the console only", function()
      router:send("web.hits:1|c|#env:dev")
      assert.are.same({ "console" }, where(router:flush(), "web.hits;env=dev"))
    end)

    it("the lab network goes to the console only", function()
      router:send("web.views:1|c", { sender = "10.99.3.4" })
      router:send("web.views:4|c", { sender = "::ffff:10.99.0.1" }) -- dual-stack IPv4
      local flush = router:flush()
      assert.are.same({ "console" }, where(flush, "web.views"))
      assert.are.equal(5, flush:value("console", "stats.counters.web.views.count"))
      router:send("web.views:2|c", { sender = "10.98.3.4" })
      router:send("web.views:8|c", { sender = "2001:db8::1" })
      router:send("web.views:16|c")
      flush = router:flush()
      -- Each route has its own aggregate: the console's goes on reporting
      -- 0 while idle, as statsd does for counters without deleteIdleStats.
      assert.are.same({ "carbon", "console" }, where(flush, "web.views"))
      assert.are.equal(26, flush:value("carbon", "stats.counters.web.views.count"))
      assert.are.equal(0, flush:value("console", "stats.counters.web.views.count"))
    end)

    it("keeps one key's samples apart when senders are routed differently", function()
      router:send("web.views:1|c", { sender = "10.99.3.4" })
      router:send("web.views:2|c", { sender = "10.98.3.4" })
      local flush = router:flush()
      assert.are.equal(1, flush:value("console", "stats.counters.web.views.count"))
      assert.are.equal(2, flush:value("carbon", "stats.counters.web.views.count"))
    end)

    it("batch jobs over TCP go to redis, over UDP to carbon", function()
      router:send("batch.import.rows:100|c", { listener = "tcp" })
      local flush = router:flush()
      assert.are.same({ "redis" }, where(flush, "batch.import.rows"))
      router:send("batch.import.rows:100|c", { listener = UDP })
      flush = router:flush()
      assert.are.same({ "carbon", "redis" }, where(flush, "batch.import.rows"))
      assert.are.equal(100, flush:value("carbon", "stats.counters.batch.import.rows.count"))
      assert.are.equal(0, flush:value("redis", "stats.counters.batch.import.rows.count"))
    end)

    it("refuses listeners and senders the config does not have", function()
      assert.has_error(function() router:send("a:1|c", { listener = "unix" }) end,
                       "no listener 'unix' in the config (it has: " .. UDP .. ", " .. TCP .. ")")
      assert.has_error(function() router:send("a:1|c", { sender = "localhost" }) end)
    end)
  end)

  describe("renames", function()
    it("legacy.APP.NAME becomes apps.APP.NAME, tags kept", function()
      router:send({ "legacy.shop.orders:2|c", "legacy.shop.orders:1|c|#region:eu" })
      local flush = router:flush()
      assert.are.same({ "carbon", "redis" }, where(flush, "apps.shop.orders"))
      assert.are.same({ "carbon", "redis" }, where(flush, "apps.shop.orders;region=eu"))
      assert.are.equal(2, flush:value("redis", "stats.counters.apps.shop.orders.count"))
      assert.are.same({}, flush:names("carbon", "legacy"))
      assert.are.same({}, flush:names("redis", "legacy"))
    end)

    it("by glob captures, by a function, and by a prefix", function()
      router:send({ "svc.auth.login.ok:1|c", "cron.NightlyBackup.duration:3000|ms", "edge.hits:7|c" })
      local flush = router:flush()
      assert.are.same({ "carbon" }, where(flush, "services.auth.login.ok"))
      assert.are.equal(3000, flush:value("carbon", "stats.timers.jobs.nightlybackup.duration.mean"))
      assert.are.equal(7, flush:value("carbon", "stats.counters.cdn.edge.hits.count"))
      assert.are.same({}, flush:names("carbon", "svc%.auth"))
      assert.are.same({}, flush:names("carbon", "NightlyBackup"))
    end)

    it("samples of the old name add up under the new one", function()
      router:send({ "legacy.shop.orders:1|c", "legacy.shop.orders:1|c" })
      router:send("legacy.shop.orders:1|c")
      assert.are.equal(3, router:flush():value("carbon", "stats.counters.apps.shop.orders.count"))
    end)
  end)

  describe("by type and name", function()
    it("sets go to redis only", function()
      router:send({ "web.users:alice|s", "web.users:bob|s", "web.users:alice|s" })
      local flush = router:flush()
      assert.are.same({ "redis" }, flush:where("stats.sets.web.users.count"))
      assert.are.equal(2, flush:value("redis", "stats.sets.web.users.count"))
    end)

    it("host gauges go to carbon and redis, other gauges to carbon", function()
      router:send({ "host.load:3|g", "host.load:+2|g", "host.load:-1|g", "web.queue:7|g" })
      local flush = router:flush()
      assert.are.same({ "carbon", "redis" }, flush:where("stats.gauges.host.load"))
      assert.are.equal(4, flush:value("redis", "stats.gauges.host.load"))
      assert.are.same({ "carbon" }, flush:where("stats.gauges.web.queue"))
      -- statsd sends a gauge again at every flush until it changes
      assert.are.equal(4, router:flush():value("carbon", "stats.gauges.host.load"))
    end)

    it("errors go everywhere, billing to carbon and redis, the rest to carbon", function()
      router:send({ "api.users.errors:1|c", "billing.invoices:1|c", "web.page.views:1|c" })
      local flush = router:flush()
      assert.are.same({ "carbon", "console", "redis" }, where(flush, "api.users.errors"))
      assert.are.same({ "carbon", "redis" }, where(flush, "billing.invoices"))
      assert.are.same({ "carbon" }, where(flush, "web.page.views"))
    end)

    it("switchyard's own metrics go to carbon", function()
      router:send({ "web.page.views:1|c", "not a metric" })
      local flush = router:flush()
      assert.are.same({ "carbon" }, flush:where("stats.statsd.numStats"))
      assert.are.same({ "carbon" }, flush:where("stats.counters.statsd.bad_lines_seen.count"))
      assert.are.equal(1, flush:value("carbon", "stats.counters.statsd.bad_lines_seen.count"))
      assert.are.equal(2, flush:value("carbon", "stats.counters.statsd.metrics_received.count"))
      assert.are.equal(1, router:stat("bad_lines"))
    end)
  end)

  describe("sampling", function()
    it("keeps a quarter of the clicks and counts each kept one four times", function()
      local lines = {}
      for i = 1, 1000 do lines[i] = "clicks.home:1|c" end
      router:send(table.concat(lines, "\n"))
      local count = router:flush():value("carbon", "stats.counters.clicks.home.count")
      local out = router:stat("sampled_out")
      assert.are.equal(4 * (1000 - out), count)
      assert.is_true(count > 700 and count < 1300, "count " .. count)
    end)
  end)

  describe("values as statsd computes them", function()
    it("counters: count, and rate per second of flushInterval", function()
      router:send({ "web.req:5|c", "web.req:5|c\nweb.req:5|c", "web.req:1|c|@0.5" })
      local flush = router:flush()
      assert.are.equal(17, flush:value("carbon", "stats.counters.web.req.count"))
      assert.are.equal(1.7, flush:value("carbon", "stats.counters.web.req.rate"))
      -- counters are sent as 0 after a quiet interval
      assert.are.equal(0, router:flush():value("carbon", "stats.counters.web.req.count"))
    end)

    it("timers: mean, percentiles, std and the rest", function()
      local lines = {}
      for v = 100, 10, -10 do lines[#lines + 1] = "web.render:" .. v .. "|ms" end
      router:send(table.concat(lines, "\n"))
      local t = router:flush():sink("redis")
      assert.are.same({}, t) -- the default route is carbon only
      router:send(table.concat(lines, "\n"))
      local v = router:flush():sink("carbon")
      local p = "stats.timers.web.render."
      assert.are.equal(10, v[p .. "count"])
      assert.are.equal(1, v[p .. "count_ps"])
      assert.are.equal(55, v[p .. "mean"])
      assert.are.equal(55, v[p .. "median"])
      assert.are.equal(10, v[p .. "lower"])
      assert.are.equal(100, v[p .. "upper"])
      assert.are.equal(550, v[p .. "sum"])
      assert.are.equal(38500, v[p .. "sum_squares"])
      assert.are.equal(math.sqrt(825), v[p .. "std"])
      assert.are.equal(9, v[p .. "count_90"])
      assert.are.equal(90, v[p .. "upper_90"])
      assert.are.equal(50, v[p .. "mean_90"])
      assert.are.equal(450, v[p .. "sum_90"])
      assert.are.equal(28500, v[p .. "sum_squares_90"])
    end)

    it("timers with a client's sample rate count 1/rate each", function()
      router:send({ "web.render:10|ms|@0.1", "web.render:30|ms|@0.1" })
      local v = router:flush():sink("carbon")
      assert.are.equal(20, v["stats.timers.web.render.count"])
      assert.are.equal(2, v["stats.timers.web.render.count_ps"])
      assert.are.equal(20, v["stats.timers.web.render.mean"])
    end)

    it("the clock: flush{ at = } and timestamp_lag", function()
      local first = router:flush()
      assert.are.equal(testing.START + 10, first.at)
      assert.is_nil(first:value("carbon", "stats.gauges.statsd.timestamp_lag"))
      local late = router:flush { at = first.at + 25 }
      assert.are.equal(15, late:value("carbon", "stats.gauges.statsd.timestamp_lag"))
      assert.are.equal(0, router:flush():value("carbon", "stats.gauges.statsd.timestamp_lag"))
    end)
  end)

  describe("the flush object", function()
    it("answers nil for a name a sink did not get, and refuses unknown sinks", function()
      router:send("web.x:1|c")
      local flush = router:flush()
      assert.is_nil(flush:value("redis", "stats.counters.web.x.count"))
      assert.are.same({ "stats.counters.web.x.count", "stats.counters.web.x.rate" },
                      flush:names("carbon", "^stats%.counters%.web%."))
      assert.has_error(function() flush:value("graphite", "x") end,
                       "no sink named 'graphite' (the config has: carbon, console, redis, traces)")
    end)
  end)
end)

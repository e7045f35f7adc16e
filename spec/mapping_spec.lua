-- statsd_exporter's mapping examples (its README), each translated into
-- routes as README.md's "prometheus" section shows, and sent through the
-- real core: the raw samples the prometheus sink gets carry the name and
-- labels statsd_exporter's mapping gives (the sink makes ";k=v" labels;
-- tests/unit/test_promstore.c).

local testing = require "switchyard.testing"

local CONFIG = [[
local route = require "switchyard.route"
return {
  flushInterval = 1000,
  sinks = {
    prom = { plugin = "prometheus", listen = "127.0.0.1:9102", ttl = 600 },
    prom_hist = { plugin = "prometheus", listen = "127.0.0.1:9103", buckets = { 0.01, 0.1, 1 } },
  },
  routes = {
    -- match: "test.dispatcher.*.*.*", labels processor/action/outcome, job
    route.glob "test.dispatcher.*.*.*" :rename "dispatcher_events_total"
      :label("processor", "%1") :label("action", "%2") :label("outcome", "%3")
      :label("job", "test_dispatcher") :passthrough "prom",
    -- match: "*.signup.*.*", job: "${1}_server"
    route.glob "*.signup.*.*" :rename "signup_events_total"
      :label("provider", "%2") :label("outcome", "%3") :label("job", "%1_server") :passthrough "prom",
    -- match_type: regex, "(.*)\.(.*)--(.*)\.status\.(.*)\.count"
    route.match "^(.*)%.(.*)%-%-(.*)%.status%.(.*)%.count$" :rename "request_total"
      :label("hostname", "%1") :label("exec", "%2") :label("protocol", "%3") :label("code", "%4")
      :passthrough "prom",
    -- match_metric_type: observer, observer_type: histogram with buckets
    route.glob "test.timer.*" :type "ms" :rename "timer_test" :label("provider", "%1")
      :passthrough "prom_hist",
    -- match: ".", match_type: regex, action: drop
    route.default() :drop "not mapped",
  },
}
]]

local function raw_names(flush, sink)
  local list = {}
  for _, r in ipairs(flush:raw(sink)) do list[#list + 1] = r.name .. " " .. r.value .. "|" .. r.type end
  return list
end

describe("statsd_exporter's mapping examples as routes", function()
  local router

  before_each(function() router = testing.load_source(CONFIG, "mapping") end)
  after_each(function() router:close() end)

  it("glob matches with name and label templates", function()
    router:send("test.dispatcher.FooProcessor.send.success:1|c\nfoo_product.signup.facebook.failure:1|c")
    assert.are.same({
      "dispatcher_events_total;processor=FooProcessor;action=send;outcome=success;job=test_dispatcher 1|c",
      "signup_events_total;provider=facebook;outcome=failure;job=foo_product_server 1|c",
    }, raw_names(router:flush(), "prom"))
  end)

  it("a regex match with four captures", function()
    router:send("web-01.api--https.status.404.count:3|c")
    assert.are.same({ "request_total;hostname=web-01;exec=api;protocol=https;code=404 3|c" },
                    raw_names(router:flush(), "prom"))
  end)

  it("match_metric_type: only timers go to the histogram sink", function()
    router:send("test.timer.aws:120|ms\ntest.timer.aws:5|c")
    local flush = router:flush()
    assert.are.same({ "timer_test;provider=aws 120|ms" }, raw_names(flush, "prom_hist"))
    assert.are.same({}, raw_names(flush, "prom"))
  end)

  it("action: drop for everything else", function()
    router:send("unmapped.metric:1|c")
    local flush = router:flush()
    assert.are.same({}, raw_names(flush, "prom"))
    assert.are.same({}, raw_names(flush, "prom_hist"))
  end)
end)

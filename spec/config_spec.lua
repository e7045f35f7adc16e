-- switchyard.config's error messages: "file:line: key: message", pointing
-- at the line where the offending key is written.  Each case is checked
-- twice: through config.load in this Lua, and through the core (as
-- `switchyard --check` and a reload see it) by switchyard.testing.

local config = require "switchyard.config"
local testing = require "switchyard.testing"

-- Load `lines` (joined with "\n") as a config file; the error message
-- with the file's name replaced by "F".
local function load_error(lines)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local c, err = config.load(path)
  local ok, core_err = pcall(testing.load, path)
  os.remove(path)
  local quoted = path:gsub("%p", "%%%0")
  assert.is_nil(c, "the config loaded, but an error was expected")
  assert.is_false(ok, "the core loaded the config, but an error was expected")
  err = err:gsub(quoted, "F")
  core_err = tostring(core_err):gsub(quoted, "F")
  assert.are.equal(err, core_err) -- the same message on both paths
  return err
end

local SINK = '  sinks = { out = { plugin = "console" }, carbon = { plugin = "graphite" } },'

describe("config errors", function()
  it("a value of the wrong type", function()
    assert.are.equal("F:3: flushInterval: must be a number, not string", load_error {
      "return {",
      SINK,
      '  flushInterval = "10s",',
      "}",
    })
  end)

  it("a wrong type inside a table names the whole path", function()
    assert.are.equal("F:4: graphite.legacyNamespace: must be a boolean, not string", load_error {
      "return {",
      SINK,
      "  graphite = {",
      '    legacyNamespace = "no",',
      "  },",
      "}",
    })
  end)

  it("an unknown option (a typo) names the closest known one", function()
    assert.are.equal("F:3: flushIntervall: unknown option; did you mean flushInterval?", load_error {
      "return {",
      SINK,
      "  flushIntervall = 1000,",
      "}",
    })
    assert.are.equal("F:3: graphite.globalprefix: unknown option; did you mean globalPrefix?",
      load_error {
        "return {",
        SINK,
        '  graphite = { globalprefix = "s" },',
        "}",
      })
    assert.are.equal("F:3: listen.thread: unknown option; did you mean threads?", load_error {
      "return {",
      SINK,
      '  listen = { { url = "udp://127.0.0.1:0", thread = 2 } },',
      "}",
    })
  end)

  it("an unknown option with nothing close gives no hint", function()
    assert.are.equal("F:3: graphite.legacy: unknown option", load_error {
      "return {",
      SINK,
      "  graphite = { legacy = true },",
      "}",
    })
    assert.are.equal("F:3: xy: unknown option", load_error {
      "return {",
      SINK,
      "  xy = 1,",
      "}",
    })
  end)

  it("the hint is the closest name, ties broken in sorted order", function()
    assert.are.equal("flushInterval", config.closest("flushinterval", { flushInterval = 1, flush_counts = 1 }))
    assert.are.equal("port", config.closest("prot", { port = 1, host = 1 }))
    assert.are.equal("abc", config.closest("abd", { abe = 1, abc = 1 }))
    assert.is_nil(config.closest("zzzzzz", { port = 1 }))
  end)

  it("a number out of range", function()
    assert.are.equal("F:3: flushInterval: must be a positive integer", load_error {
      "return {",
      SINK,
      "  flushInterval = -5,",
      "}",
    })
  end)

  it("an unknown sink in routes names the rule", function()
    assert.are.equal("F:5: routes: routes[2]: no sink named 'graphite'", load_error {
      'local route = require "switchyard.route"',
      "return {",
      SINK,
      "  flushInterval = 1000,",
      "  routes = {",
      '    route.prefix "a." :to "out",',
      '    route.prefix "b." :to "graphite",',
      "  },",
      "}",
    })
  end)

  it("a rule without an action, and two defaults", function()
    assert.are.equal("F:4: routes: routes[1]: a rule needs :to(...), :passthrough(...) or :drop()",
      load_error {
        'local route = require "switchyard.route"',
        "return {",
        SINK,
        '  routes = { route.prefix "a." },',
        "}",
      })
    assert.are.equal("F:4: routes: routes[2]: a second route.default()", load_error {
      'local route = require "switchyard.route"',
      "return {",
      SINK,
      '  routes = { route.default() :to "out", route.default() :to "carbon" },',
      "}",
    })
  end)

  it("a failing checks entry says what the rules did instead", function()
    local lines = {
      'local route = require "switchyard.route"',
      "return {",
      SINK,
      "  routes = {",
      '    route.prefix "debug." :to "out",',
      '    route.default() :to "carbon",',
      "  },",
      "  checks = {",
      '    { "api.x", to = { "carbon" } },',
      '    { "debug.x", drop = true },',
      "  },",
      "}",
    }
    assert.are.equal("F:8: checks: entry 2 ('debug.x'): kept but expected to be dropped", load_error(lines))
    lines[10] = '    { "debug.x", to = { "carbon" } },'
    assert.are.equal("F:8: checks: entry 2 ('debug.x'): goes to {out}, expected {carbon}", load_error(lines))
    lines[10] = '    { "debug.x", name = "dbg.x" },'
    assert.are.equal("F:8: checks: entry 2 ('debug.x'): is named 'debug.x', expected 'dbg.x'", load_error(lines))
  end)

  it("a listen URL with an unknown scheme", function()
    assert.are.equal(
      "F:2: listen: 'http://127.0.0.1:80': the scheme must be udp://, tcp://, unix:// or unixgram://",
      load_error {
        "return {",
        '  listen = { "http://127.0.0.1:80" },',
        SINK,
        "}",
      })
  end)

  it("a sink without a plugin", function()
    assert.are.equal("F:3: sinks.out.plugin: must name a plugin", load_error {
      "return {",
      "  sinks = {",
      "    out = { plugin = 42 },",
      "  },",
      "}",
    })
  end)

  it("no sinks at all", function()
    assert.are.equal('F: sinks: no sinks: add one, e.g. sinks = { out = { plugin = "console" } }',
      load_error { "return {", "  flushInterval = 1000,", "}" })
  end)

  it("a bad auth token", function()
    assert.are.equal("F:3: auth: auth.tokens: 'a.b' cannot be a token (no '.', ':' or '|')", load_error {
      "return {",
      SINK,
      '  auth = { tokens = { ["a.b"] = true } },',
      "}",
    })
  end)

  it("Lua's own errors keep their file and line", function()
    assert.are.equal("F:3: '}' expected (to close '{' at line 1) near 'flushInterval'", load_error {
      "return {",
      SINK:sub(1, -2),
      "  flushInterval = 1,",
      "}",
    })
    assert.are.equal("F:4: attempt to index local 'x' (a nil value)", load_error {
      "local x = nil",
      "return {",
      SINK,
      "  flushInterval = x.y,",
      "}",
    })
    assert.are.equal("F: (config): the config must return a table", load_error { "return 42" })
  end)
end)

describe("dogstatsdEvents", function()
  it("naming no sink is an error that names it", function()
    assert.are.equal("F:3: dogstatsdEvents: entry 2: no sink named 'tier'", load_error {
      "return {",
      SINK,
      '  dogstatsdEvents = { "out", "tier" },',
      "}",
    })
  end)

  it("must be a list", function()
    assert.matches("F:3: dogstatsdEvents: must be a list", load_error {
      "return {",
      SINK,
      '  dogstatsdEvents = "out",',
      "}",
    })
  end)

  it("defaults to none: events are counted only", function()
    local c = testing.load_source('return { sinks = { out = { plugin = "console" } } }').config
    assert.are.same({}, c.dogstatsdEvents)
  end)
end)

describe("config defaults", function()
  it("follow statsd's exampleConfig.js", function()
    local c = testing.load_source('return { sinks = { out = { plugin = "console" } } }').config
    assert.are.equal(10000, c.flushInterval)
    assert.are.same({ 90 }, c.percentThreshold)
    assert.are.same({ { url = "udp://0.0.0.0:8125" } }, c.listen)
    assert.is_true(c.graphite.legacyNamespace)
    assert.are.equal("statsd", c.prefixStats)
  end)
end)

describe("checks", function()
  -- Fails with config.lua as of this writing: a check's type is passed to
  -- the rules as written, so type = "timer" is a type no sample has and
  -- route.type "timer" (which means "ms") never matches it.
  it("take the type names rules take", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(table.concat({
      'local route = require "switchyard.route"',
      "return {",
      SINK,
      '  routes = { route.type "timer" :to "out", route.default() :to "carbon" },',
      '  checks = { { "api.latency", type = "timer", to = { "out" } },',
      '             { "api.latency", type = "ms", to = { "out" } } },',
      "}",
    }, "\n"))
    f:close()
    local c, err = config.load(path)
    os.remove(path)
    assert.is_nil(err)
    assert.are.equal("table", type(c))
  end)
end)

describe("passthrough = true", function()
  local function load(lines)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local c, err = config.load(path)
    os.remove(path)
    return c, err
  end
  local SINKS = '  sinks = { out = { plugin = "console" }, prom = { plugin = "prometheus", passthrough = true } },'

  it("sends every kept sample raw to the sink, and no flushed values, with or without routes", function()
    local c, err = load({
      'local route = require "switchyard.route"',
      "return {", SINKS,
      '  routes = { route.prefix "d." :drop "debug", route.prefix "a." :to "out" },',
      '  checks = { { "a.x", to = { "out" }, passthrough = { "prom" } },',
      '             { "b.x", to = { "out" }, passthrough = { "prom" } },',
      '             { "d.x", drop = true } },',
      "}" })
    assert.is_nil(err)
    assert.are.equal("table", type(c))
    c, err = load({ "return {", SINKS,
      '  checks = { { "z", to = { "out" }, passthrough = { "prom" } } },', "}" })
    assert.is_nil(err)
    assert.are.equal("function", type(c.decide))
  end)

  it("a check expecting otherwise fails", function()
    local _, err = load({ "return {", SINKS,
      '  checks = { { "z", to = { "out", "prom" } } },', "}" })
    assert.is_truthy(err and err:find("goes to {out}, expected {out, prom}", 1, true))
  end)
end)

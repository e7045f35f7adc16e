-- The Lua side of switchyard: config loading, the routing rule DSL, the
-- example configs, and switchyard.testing (specs that drive the real core
-- through LuaJIT's FFI).  The daemon and libswitchyard.so itself are built
-- and installed with `make` / `make install`; switchyard.testing finds the
-- library through SWITCHYARD_LIB, a build tree, or the system library path.
--
--   luarocks lint rockspec/switchyard-scm-1.rockspec
--   luarocks make --lua-version=5.1 rockspec/switchyard-scm-1.rockspec --tree /tmp/rocktree
rockspec_format = "3.0"
package = "switchyard"
version = "scm-1"

source = {
  url = "git+https://example.invalid/switchyard.git",
}

description = {
  summary = "Lua library of switchyard, a StatsD-compatible metrics router",
  detailed = [[
switchyard.config loads and checks switchyard configs (Etsy statsd's option
names); switchyard.route is the routing rule DSL (prefix, glob, match,
tag, type, listener, sender, sample, rename, drop, passthrough);
switchyard.testing loads a config into the real core (libswitchyard.so,
through LuaJIT's FFI) so busted specs can send StatsD lines, flush, and
read what each sink received.  switchyard.examples.* are configs to start
from.
]],
  homepage = "https://example.invalid/switchyard",
  license = "MIT",
  labels = { "statsd", "metrics", "graphite", "routing" },
}

-- LuaJIT (Lua 5.1's language): switchyard.testing needs its FFI, and the
-- core runs configs in LuaJIT.
dependencies = {
  "lua ~> 5.1",
}

test_dependencies = {
  "busted >= 2.0",
}

build = {
  type = "builtin",
  modules = {
    ["switchyard.config"] = "lua/switchyard/config.lua",
    ["switchyard.route"] = "lua/switchyard/route.lua",
    ["switchyard.testing"] = "lua/switchyard/testing.lua",
    ["switchyard.examples.routing"] = "lua/switchyard/examples/routing.lua",
    ["switchyard.examples.auth"] = "lua/switchyard/examples/auth.lua",
    ["switchyard.examples.sampling"] = "lua/switchyard/examples/sampling.lua",
  },
}

test = {
  type = "busted",
  flags = { "--lua=luajit" },
}

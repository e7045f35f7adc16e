-- The config harness's switchyard.config (tests/fuzz/fuzz_config.c gives
-- tests/fuzz/lua as the Lua directory, so this file is found first): the
-- real lua/switchyard/config.lua, unchanged, in a state where the standard
-- library cannot reach outside the process.  A fuzzed config could
-- otherwise call os.exit (which libFuzzer reports as a crash that is none),
-- run commands, write or delete files, read stdin, or poke memory through
-- the FFI.  Everything the loader itself needs (io.open for reading,
-- loadstring, require of switchyard.route) is left as it is.

local here = debug.getinfo(1, "S").source:match("^@(.*)/switchyard/config%.lua$")
local real = here .. "/../../../lua"
package.path = real .. "/?.lua;" .. package.path

local function refuse(name)
  return function() error(name .. " is not available to configs under the fuzz harness", 2) end
end

for _, name in ipairs({ "exit", "execute", "remove", "rename", "tmpname", "setlocale" }) do
  os[name] = refuse("os." .. name)
end
for _, name in ipairs({ "popen", "output", "input", "read", "write", "lines" }) do
  io[name] = refuse("io." .. name)
end
io.stdin, io.stdout, io.stderr = nil, nil, nil
print = function() end

local open = io.open
io.open = function(path, mode)
  if mode ~= nil and mode ~= "r" and mode ~= "rb" then
    error("io.open for writing is not available to configs under the fuzz harness", 2)
  end
  return open(path, mode)
end

package.loaded.ffi = nil
package.preload.ffi = refuse("ffi")
package.loadlib = refuse("package.loadlib")
package.cpath = ""
-- C modules cannot be found any more; keep only the Lua searchers.
if package.loaders then
  package.loaders[3], package.loaders[4] = nil, nil
end

return dofile(real .. "/switchyard/config.lua")

-- lua/switchyard/testing.lua declares the core's test facade for the FFI
-- by hand (an installed rock has no C headers to read).  The C side is
-- core/testing.h (and sy_log_level, core/util/log.h).  A declaration that
-- drifts from its header is undefined behaviour at the first call, so this
-- compares them: every sy_ function and variable the cdef names must be
-- declared in those headers with the same type, and every function
-- testing.h declares must be in the cdef.  The stats testing.lua lists
-- must be the ones sy_test_stat (core/testing.c) knows.

local function read(path)
  return (assert(io.open(path, "rb")):read("*a"))
end

-- One declaration as a canonical string: comments gone, whitespace
-- collapsed, none around punctuation.
local function canonical(decl)
  decl = decl:gsub("%s+", " ")
  decl = decl:gsub(" ?([%*%(%),]) ?", "%1")
  return (decl:gsub("^ ", ""):gsub(" $", ""))
end

-- The declarations of C text: { name = canonical text } for every
-- sy_-named function, extern variable and typedef.
local function declarations(text)
  text = text:gsub("/%*.-%*/", " "):gsub("//[^\n]*", " ")
  text = text:gsub("\n%s*#[^\n]*", "\n")
  local out = {}
  for decl in text:gmatch("[^;{}]+") do
    local c = canonical(decl)
    local name = c:match("(sy_[%w_]+)%(") or c:match("^extern .-(sy_[%w_]+)$")
                 or c:match("^typedef .-(sy_[%w_]+)$")
    if name then out[name] = c end
  end
  return out
end

-- The ffi.cdef [[ ... ]] block of a Lua source.
local function cdef_block(lua)
  return assert(lua:match("ffi%.cdef%s*%[%[(.-)%]%]"), "no ffi.cdef [[ ]] block")
end

-- The differences between a cdef and its headers, as readable lines.
local function drift(cdef_text, header_texts, facade_text)
  local cdef = declarations(cdef_text)
  local c = {}
  for _, h in ipairs(header_texts) do
    for k, v in pairs(declarations(h)) do c[k] = v end
  end
  local problems = {}
  for name, decl in pairs(cdef) do
    if not c[name] then
      problems[#problems + 1] = name .. ": in the cdef, declared in no header"
    elseif c[name] ~= decl then
      problems[#problems + 1] = name .. ": cdef `" .. decl .. "` but header `" .. c[name] .. "`"
    end
  end
  for name in pairs(declarations(facade_text)) do
    if not cdef[name] then
      problems[#problems + 1] = name .. ": in testing.h, missing from the cdef"
    end
  end
  table.sort(problems)
  return problems
end

local LUA = "lua/switchyard/testing.lua"
local HEADERS = { "core/testing.h", "core/util/log.h" }

local function current()
  local lua = read(LUA)
  local headers = {}
  for i, h in ipairs(HEADERS) do headers[i] = read(h) end
  return cdef_block(lua), headers, headers[1]
end

describe("testing.lua's FFI declarations", function()
  it("match core/testing.h and core/util/log.h", function()
    local cdef, headers, facade = current()
    assert.are.same({}, drift(cdef, headers, facade))
  end)

  it("are compared for real: a changed, a missing and an extra declaration are found", function()
    local cdef, headers, facade = current()
    -- a parameter's type changed in the header
    local changed = facade:gsub("int64_t now_s", "double now_s")
    assert.are_not.equal(facade, changed)
    local p = drift(cdef, { changed, headers[2] }, changed)
    assert.are.equal(1, #p)
    assert.matches("^sy_test_flush: cdef", p[1])
    -- a function added to the header only
    local added = facade:gsub("#endif", "int sy_test_new_thing(sy_test *t);\n#endif")
    p = drift(cdef, { added, headers[2] }, added)
    assert.are.same({ "sy_test_new_thing: in testing.h, missing from the cdef" }, p)
    -- a function the cdef declares that no header has
    p = drift(cdef .. "\nint sy_test_gone(void);\n", headers, facade)
    assert.are.same({ "sy_test_gone: in the cdef, declared in no header" }, p)
    -- whitespace and line breaks do not count
    p = drift(cdef:gsub(", ", ",\n      "), headers, facade)
    assert.are.same({}, p)
  end)

  it("list the stats sy_test_stat knows", function()
    local known = {}
    local body = assert(read("core/testing.c"):match("double sy_test_stat%(.-\n}"))
    for name in body:gmatch('strcmp%(name, "([%w_]+)"%)') do known[#known + 1] = name end
    table.sort(known)
    local listed = {}
    for i, s in ipairs(require("switchyard.testing").STATS) do listed[i] = s end
    table.sort(listed)
    assert.are.same(known, listed)
  end)
end)

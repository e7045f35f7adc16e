-- lpattern_diff.lua - core/engine/lpattern.c against LuaJIT's own pattern functions.
--
-- Run by tests/unit/test_lpattern.c in a state where string.find, match,
-- gmatch and gsub have been replaced by sy_lpattern_install (as the config
-- loader does); `orig` holds LuaJIT's originals, taken before.
--
--   local ncmp, nbad, report = dofile(path)(orig, bounded, seed, npairs)
--
-- Every call is made the same way on both sides, from the same line of
-- this file (so even the "file:line:" in front of an error, and the
-- function name in "bad argument" messages, must agree), and all results
-- are compared: count, types and values, gmatch's iterations one by one,
-- the arguments gsub passes to a replacement function.  Errors must match
-- in text; the text without the position prefix is the pass criterion,
-- the full text is counted too (report "full-text error matches").
--
-- Cases: hand-written edge cases, every byte after '%' and in a set
-- against every byte, then `npairs` random (pattern, subject) pairs from a
-- small grammar (classes, sets, quantifiers, anchors, captures, position
-- captures, back-references, %b, %f, and now and then a malformed piece).
-- The harness itself uses only the originals.

return function(orig, new, seed, npairs)
  local ogsub = orig.gsub
  local R = math.random
  math.randomseed(seed)

  local function pack(...) return { n = select("#", ...), ... } end

  local ncmp, nbad, nerr_full, nerr = 0, 0, 0, 0
  local report = {}
  local full_diffs = {} -- errors equal but for the position prefix

  local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
  end

  local function show_pack(r)
    local t = {}
    for i = 1, r.n do t[i] = show(r[i]) end
    return "(" .. table.concat(t, ", ") .. ")"
  end

  local function strip(msg)
    if type(msg) ~= "string" then return msg end
    return (ogsub(msg, "^[^\n]-:%d+: ", ""))
  end

  -- Results of pcall(...): ok flag first.
  local function same(a, b)
    if a[1] ~= b[1] then return false end
    if not a[1] then
      nerr = nerr + 1
      if a[2] == b[2] then
        nerr_full = nerr_full + 1
      elseif #full_diffs < 5 then
        full_diffs[#full_diffs + 1] = string.format("  %q vs %q", tostring(a[2]), tostring(b[2]))
      end
      return strip(a[2]) == strip(b[2])
    end
    if a.n ~= b.n then return false end
    for i = 2, a.n do
      if type(a[i]) ~= type(b[i]) or a[i] ~= b[i] then return false end
    end
    return true
  end

  local function note(what, args, a, b)
    ncmp = ncmp + 1
    if same(a, b) then return end
    nbad = nbad + 1
    if #report < 25 then
      report[#report + 1] = string.format("%s%s: LuaJIT %s, lpattern %s", what, show_pack(args),
                                          show_pack(a), show_pack(b))
    end
  end

  -- One call site per function, used for both sides.
  local function call_find(lib, ...) return pack(lib.find(...)) end
  local function call_match(lib, ...) return pack(lib.match(...)) end
  local function call_gsub(lib, ...) return pack(lib.gsub(...)) end
  local function call_gmatch(lib, ...) return pack(lib.gmatch(...)) end

  local function cmp_call(name, caller, ...)
    local a = pack(pcall(caller, orig, ...))
    local b = pack(pcall(caller, new, ...))
    -- pcall(caller) adds a table of results: unpack it for comparison
    local function flat(r)
      if not r[1] then return r end
      local t = r[2]
      local out = { n = t.n + 1, true }
      for i = 1, t.n do out[i + 1] = t[i] end
      return out
    end
    note(name, pack(...), flat(a), flat(b))
  end

  -- gmatch: each iteration (at most 40), and the error if one is raised.
  local function gm(lib, s, p)
    local steps = {}
    local ok, err = pcall(function()
      local it = lib.gmatch(s, p)
      for _ = 1, 40 do
        local r = pack(it())
        steps[#steps + 1] = r
        if r[1] == nil then break end
      end
    end)
    return steps, ok, err
  end

  local function cmp_gmatch(s, p)
    local sa, oka, erra = gm(orig, s, p)
    local sb, okb, errb = gm(new, s, p)
    local n = math.max(#sa, #sb)
    for i = 1, n do
      local a, b = sa[i] or { n = 0 }, sb[i] or { n = 0 }
      local pa, pb = { n = a.n + 1, true }, { n = b.n + 1, true }
      for k = 1, a.n do pa[k + 1] = a[k] end
      for k = 1, b.n do pb[k + 1] = b[k] end
      note("gmatch#" .. i, pack(s, p), pa, pb)
    end
    note("gmatch-end", pack(s, p), pack(oka, erra), pack(okb, errb))
  end

  -- gsub with a replacement function: the arguments of every call too.
  local function replacer(log, mode)
    return function(...)
      log[#log + 1] = pack(...)
      local k = (#log + mode) % 6
      if k == 0 then return nil
      elseif k == 1 then return false
      elseif k == 2 then return (...)
      elseif k == 3 then return #log
      elseif k == 4 and mode == 5 then return {}
      else return "<" .. tostring((...)) .. ">" end
    end
  end

  local function cmp_gsub_fn(s, p, mode, max)
    local la, lb = {}, {}
    local a = pack(pcall(call_gsub, orig, s, p, replacer(la, mode), max))
    local b = pack(pcall(call_gsub, new, s, p, replacer(lb, mode), max))
    local function flat(r)
      if not r[1] then return r end
      return { n = 3, true, r[2][1], r[2][2] }
    end
    note("gsub(fn)", pack(s, p, mode, max), flat(a), flat(b))
    note("gsub(fn) calls", pack(s, p, mode), pack(true, #la), pack(true, #lb))
    for i = 1, math.min(#la, #lb) do
      local x, y = { n = la[i].n + 1, true }, { n = lb[i].n + 1, true }
      for k = 1, la[i].n do x[k + 1] = la[i][k] end
      for k = 1, lb[i].n do y[k + 1] = lb[i][k] end
      note("gsub(fn) call#" .. i, pack(s, p), x, y)
    end
  end

  local REPL_TABLE = { a = "A", b = false, x = {}, [""] = "E", c = "%1", [1] = "one", [3] = 3,
                       ["."] = "dot" }
  local REPLS = { "", "z", "%0", "%1", "%2", "%3", "%%", "%a", "%", "-%1-", "[%0]", 7, "%9", "x%",
                  "%1%2%1", "%0%0" }
  -- (an index one past the end picks nil)
  local INITS = { 1, 0, -1, -3, 2, 5, 100, -100, 1e10, -1e10, 2 ^ 31, -2 ^ 31, 0 / 0, 1.5, -1.5,
                  "2", " 3 ", "0x2" }
  local MAXES = { 0, 1, 2, -1, 2.5, "1", 1e10 }

  -- Everything about one (subject, pattern) pair.
  local function pair(s, p, full)
    cmp_call("find", call_find, s, p)
    cmp_call("match", call_match, s, p)
    local init = INITS[R(#INITS + 1)] -- nil now and then
    cmp_call("find", call_find, s, p, init)
    cmp_call("match", call_match, s, p, init)
    cmp_call("find plain", call_find, s, p, init, R(2) == 1)
    cmp_gmatch(s, p)
    cmp_call("gsub", call_gsub, s, p, REPLS[R(#REPLS)], MAXES[R(#MAXES + 1)])
    if full then
      for i = 1, #REPLS do cmp_call("gsub", call_gsub, s, p, REPLS[i]) end
      for i = 1, #INITS do cmp_call("find", call_find, s, p, INITS[i]) end
      for i = 1, #INITS do cmp_call("match", call_match, s, p, INITS[i]) end
      for i = 1, #MAXES do cmp_call("gsub", call_gsub, s, p, "<%0>", MAXES[i]) end
      for mode = 0, 5 do cmp_gsub_fn(s, p, mode) end
    else
      cmp_gsub_fn(s, p, R(0, 5), MAXES[R(#MAXES + 1)])
    end
    cmp_call("gsub(table)", call_gsub, s, p, REPL_TABLE)
    -- the method form goes through the string metatable: the bounded one
    if type(s) == "string" and type(p) == "string" then
      local a = pack(pcall(orig.match, s, p))
      local b = pack(pcall(function() return s:match(p) end))
      note("s:match", pack(s, p), a, b)
      local c = pack(pcall(orig.gsub, s, p, "<%0>"))
      local d = pack(pcall(function() return s:gsub(p, "<%0>") end))
      note("s:gsub", pack(s, p), c, d)
    end
  end

  ---------------------------------------------------------------------------
  -- hand-written cases
  local rep = string.rep
  local cases = {
    { "hello world", "o w" }, { "hello", "l+" }, { "hello", "^h" }, { "hello", "o$" },
    { "he$llo", "e$l" }, { "a.b", "a.b" }, { "a+b", "a+b" }, { "a+b", "a%+b" },
    { "", "" }, { "abc", "" }, { "", "a*" }, { "abc", "a*" }, { "aaa", "a-" }, { "aaa", "a-$" },
    { "aaab", "^a-b" }, { "aaa", "^a-b" }, { "abc", "^" }, { "abc", "$" }, { "abc", "^$" },
    { "", "^$" }, { "$", "$$" }, { "a$", "a$$" }, { "^a", "^^a" }, { "a", "a^" },
    { "[]", "[]]" }, { "]", "[]]" }, { "^", "[^]]" }, { "a]", "[^]]" }, { "x", "[a-]" },
    { "-", "[a-]" }, { "-", "[-a]" }, { "%", "[%%]" }, { "]", "[%]]" }, { "b", "[a-c]" },
    { "b", "[c-a]" }, { "-", "[%a-z]" }, { "z", "[%a-z]" }, { "^", "[a^]" }, { "a", "[]" },
    { "THE (quick) fox", "%((%a+)%)" }, { "f(a(b)c)d", "%b()" }, { "((", "%b()" },
    { "x", "%b" }, { "x", "%bx" }, { "abba", "%bab" }, { "xax", "%bxx" }, { "(a)", "(%b())" },
    { "THE (quick) fox", "%f[%a]%a+" }, { "hello", "%f[%l]" }, { "x", "%f" }, { "x", "%fx" },
    { "", "%f[%z]" }, { "a", "%f[%Z]" }, { "a\0b", "%f[%z]" }, { "ab", "%f[%z]" },
    { "hello hello", "(h%a+) %1" }, { "aa", "(a)%1" }, { "a", "%1" }, { "a", "(a%1)" },
    { "a", "%0" }, { "ab", "()a()" }, { "ab", "()%1" }, { "abab", "(ab)%1" }, { "aXa", "(a)X%1$" },
    { "a", "(a" }, { "b", "(a" }, { "a", "a)" }, { "a", ")" }, { "", "(()" }, { "a", "((a)" },
    { rep("a", 33), rep("(a)", 33) }, { rep("a", 32), rep("(a)", 32) }, { "", rep("()", 33) },
    { rep("a", 300), rep("a?", 199) }, { rep("a", 300), rep("a?", 200) },
    { rep("a", 300), rep("a?", 201) }, { "aaa", rep("a*", 250) }, { "", rep("a?", 300) },
    { rep("a", 12), rep("a-", 6) .. "b" }, { "a", rep("(", 20) .. "a" .. rep(")", 20) },
    { "a", "a%" }, { "a", "%" }, { "b", "a%" }, { "b", "a[" }, { "a", "a[" }, { "a", "[a" },
    { "a", "[^" }, { "a", "[%" }, { "a", "[a%]" }, { "a", "[a%" }, { "a", "%f[a" },
    { "xa\0b", "a\0b" }, { "xa", "a\0b." }, { "a\0", "%z" }, { "\0", "[%z]" }, { "a\0b", ".-%z" },
    { "\0", "\0" }, { "a\0b", "[\0]" }, { "a\0", "a%z$" }, { "\0\0", "%Z" },
    { "\200\255", "[\128-\255]+" }, { "\195\169", "%a" }, { "\200", "%A" }, { "\200", "%C" },
    { "\127", "%c" }, { "\t\n\v\f\r ", "%s+" }, { "a b", "%g+" }, { "~!", "%g" }, { "\127", "%g" },
    { "abc", "()" }, { "hello world from lua", "%a+" }, { "k=v, a=b", "(%w+)=(%w+)" },
    { "^a^a", "^a" }, { "one two", "(%a+)()" }, { "a,b,,c", "([^,]*)" },
    { "hello world", "o" }, { "abc", "%w" }, { "abc", "(%w)" }, { "abc", "b" }, { "abc", "^a" },
    { "aaa", "^a" }, { "x.y.z", "%." }, { "api.web01.requests", "^api%.([^.]+)%.(.+)$" },
    { "a.b.c.d.x", "^(.-)%.(.-)%.(.-)%.(.-)%.x$" }, { rep(".", 40), "^(.-)%.(.-)%.(.-)%.x$" },
    { "abc", "%@" }, { "a_b", "%_" }, { "a", "%y" }, { "ab", "a-b" }, { "ab", "a?b?c?" },
    { "xyz", "[x-z]+$" }, { "  trim  ", "^%s*(.-)%s*$" }, { "aXbXc", "X" }, { "1e5", "%d+" },
  }
  for _, c in ipairs(cases) do pair(c[1], c[2], true) end

  -- Arguments: numbers taken as strings, wrong types, missing values.
  -- { function, number of arguments, arguments... }
  local argcases = {
    { "find", 2, 12345, 3 }, { "find", 3, 12345, 3, 2 }, { "match", 2, 1.5, "%." },
    { "find", 2, nil, "a" }, { "find", 2, "a", nil }, { "find", 1, "a" }, { "find", 0 },
    { "match", 2, {}, "a" }, { "find", 3, "a", "a", "x" }, { "find", 3, "a", "a", true },
    { "find", 3, "a", "a", {} }, { "find", 4, "abc", "b", nil, 1 }, { "find", 4, "a.c", ".", 1, 0 },
    { "gsub", 1, "a" }, { "gsub", 2, "a", "a" }, { "gsub", 3, "abc", "b", true },
    { "gsub", 4, "abc", "b", "x", "y" }, { "gsub", 4, "abc", "b", nil, "y" },
    { "gsub", 3, 123, 2, 9 }, { "gsub", 3, "abc", 98, "x" }, { "gsub", 4, "abc", "b", "x", {} },
    { "gsub", 3, nil, "a", "b" }, { "match", 3, "abc", "b", "x" }, { "match", 1, "abc" },
    { "gsub", 3, "abc", "b", nil }, { "gsub", 4, "abc", "", "-", 2 },
  }
  local callers = { find = call_find, match = call_match, gsub = call_gsub }
  for _, c in ipairs(argcases) do
    cmp_call(c[1], callers[c[1]], unpack(c, 3, 2 + c[2]))
  end
  for _, a in ipairs({ { nil, "a" }, { "a", nil }, { "a" }, { 12, 1 } }) do
    local x = pack(pcall(call_gmatch, orig, unpack(a, 1, 2)))
    local y = pack(pcall(call_gmatch, new, unpack(a, 1, 2)))
    note("gmatch args", pack(a[1], a[2]), pack(x[1], x[1] and type(x[2][1]) or x[2]),
         pack(y[1], y[1] and type(y[2][1]) or y[2]))
  end
  cmp_gmatch(12321, 2)

  -- Every byte after '%', alone and in a set, against every byte.
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  all = table.concat(all)
  for i = 0, 255 do
    local c = string.char(i)
    cmp_call("class", call_gsub, all, "%" .. c, "")
    cmp_call("class", call_gsub, all, "[%" .. c .. "]", "")
    cmp_call("class", call_gsub, all, "[^%" .. c .. "]+", "-")
    cmp_call("literal", call_gsub, all, c, "")
    cmp_call("set", call_gsub, all, "[" .. c .. "-z]", "")
  end

  ---------------------------------------------------------------------------
  -- random pairs
  local SUBJ = { "a", "b", "c", ".", " ", "1", "x", "(", ")", "[", "]", "^", "$", "-", "%",
                 "\0", "\200", "A", "\n", "a", "b", "a" }
  local CLASSES = { "%a", "%c", "%d", "%g", "%l", "%p", "%s", "%u", "%w", "%x", "%z", "%A", "%C",
                    "%D", "%G", "%L", "%P", "%S", "%U", "%W", "%X", "%Z" }
  local ESCAPES = { "%.", "%%", "%(", "%)", "%[", "%]", "%-", "%^", "%$", "%*", "%?", "%+", "%@",
                    "%_" }
  local LITS = { "a", "b", "c", "x", "1", " ", "A", "\0", "\200", "_", "]", ",", "a", "b" }
  local SETLITS = { "a", "b", ".", "(", "-", "^", "\200", "$", "]", "x", "%", "\0" }
  local RANGES = { "a-c", "0-9", "a-", "-a", "%a-z", "x-b", "\0-a", "a-\200", "]-a" }
  local MALFORMED = { "%", "[a", "[", "%f", "%fa", ")", "(", "%b", "%ba", "%0", "%9", "[%",
                      "[^", "[]", "%f[" }
  local QUANT = { "", "", "", "*", "+", "-", "?" }

  local function set()
    local t = { "[" }
    if R(3) == 1 then t[#t + 1] = "^" end
    for _ = 1, R(1, 4) do
      local k = R(4)
      if k == 1 then t[#t + 1] = RANGES[R(#RANGES)]
      elseif k == 2 then t[#t + 1] = CLASSES[R(#CLASSES)]
      elseif k == 3 then t[#t + 1] = ESCAPES[R(#ESCAPES)]
      else t[#t + 1] = SETLITS[R(#SETLITS)] end
    end
    t[#t + 1] = "]"
    return table.concat(t)
  end

  local function single()
    local k = R(10)
    if k == 1 then return "."
    elseif k <= 3 then return CLASSES[R(#CLASSES)]
    elseif k == 4 then return ESCAPES[R(#ESCAPES)]
    elseif k <= 6 then return set()
    else return LITS[R(#LITS)] end
  end

  local seq
  local function item(depth)
    local k = R(30)
    if k <= 18 then return single() .. QUANT[R(#QUANT)]
    elseif k <= 21 and depth < 3 then return "(" .. seq(depth + 1, 3) .. ")"
    elseif k == 22 then return "()"
    elseif k == 23 then return "%b" .. ({ "()", "ab", "[]", "xx" })[R(4)]
    elseif k == 24 then return "%f" .. set()
    elseif k == 25 then return "%" .. R(1, 3)
    elseif k == 26 then return "$"
    elseif k == 27 and R(3) == 1 then return MALFORMED[R(#MALFORMED)]
    else return single() end
  end

  seq = function(depth, maxn)
    local t = {}
    for i = 1, R(0, maxn) do t[i] = item(depth) end
    return table.concat(t)
  end

  local function pattern()
    return (R(4) == 1 and "^" or "") .. seq(0, 6) .. (R(4) == 1 and "$" or "")
  end

  local function subject(p)
    local t = {}
    for i = 1, R(0, 14) do t[i] = SUBJ[R(#SUBJ)] end
    local s = table.concat(t)
    -- now and then the subject is made of the pattern's own characters
    if R(4) == 1 then s = ogsub(p, "[%%%^%$%*%+%?%-%[%]]", "") .. s end
    return s
  end

  for i = 1, npairs do
    local p = pattern()
    local s = subject(p)
    pair(s, p, i % 50 == 0)
  end

  -- a sanity check of the harness: it must see a difference when there is one
  assert(not same(pack(true, 1), pack(true, 2)) and not same(pack(true, "a"), pack(false, "a")))

  report[#report + 1] = string.format("%d errors compared, %d full-text error matches",
                                      nerr, nerr_full)
  for _, d in ipairs(full_diffs) do report[#report + 1] = d end
  return ncmp, nbad, table.concat(report, "\n")
end

-- json.lua - JSON for manifests, checkpoint metadata and QEMU options.
--
-- encode() is deterministic: object keys sorted, integers without a
-- fraction, so equal values give equal bytes (build ids hash them).
-- decode() is an LPeg grammar over a bounded input; malformed text returns
-- nil, "json: ... at byte N", never raises.
local lpeg = require "lpeg"

local M = {}

M.MAX_INPUT = 16 * 1024 * 1024
M.MAX_DEPTH = 64

M.null = setmetatable({}, { __tostring = function() return "json.null" end })
local array_mt = { __name = "json.array" }

--- Mark t as an array (so an empty one encodes as []).
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

-- The shortest of %.14g..%.17g that reads back as the same number.
local function shortest(v)
  for digits = 14, 16 do
    local s = ("%." .. digits .. "g"):format(v)
    if tonumber(s) == v then return s end
  end
  return ("%.17g"):format(v)
end

local function encode_table(t, out, indent, depth, seen)
  if seen[t] then error("json: cannot encode a cycle", 0) end
  if depth > M.MAX_DEPTH then error("json: nesting deeper than " .. M.MAX_DEPTH, 0) end
  seen[t] = true
  local nl, pad, inner = "", "", ""
  if indent then
    nl = "\n"
    pad = string.rep(indent, depth)
    inner = pad .. indent
  end
  if is_array(t) then
    if #t == 0 then out[#out + 1] = "[]" seen[t] = nil return end
    out[#out + 1] = "[" .. nl
    for i, v in ipairs(t) do
      out[#out + 1] = inner
      encode_value(v, out, indent, depth + 1, seen)
      out[#out + 1] = (i < #t and "," or "") .. nl
    end
    out[#out + 1] = pad .. "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then error("json: object key is a " .. type(k) .. ", expected a string", 0) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    if #keys == 0 then out[#out + 1] = "{}" seen[t] = nil return end
    out[#out + 1] = "{" .. nl
    for i, k in ipairs(keys) do
      out[#out + 1] = inner .. quote(k) .. (indent and ": " or ":")
      encode_value(t[k], out, indent, depth + 1, seen)
      out[#out + 1] = (i < #keys and "," or "") .. nl
    end
    out[#out + 1] = pad .. "}"
  end
  seen[t] = nil
end

encode_value = function(v, out, indent, depth, seen)
  local tv = type(v)
  if v == M.null then
    out[#out + 1] = "null"
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode " .. tostring(v), 0) end
    out[#out + 1] = math.type(v) == "integer" and ("%d"):format(v)
      or (v == math.floor(v) and math.abs(v) < 2 ^ 53) and ("%d"):format(math.tointeger(v))
      or shortest(v)
  elseif tv == "table" then
    encode_table(v, out, indent, depth, seen)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- Encode v. opts.indent (e.g. "  ") pretty-prints. Raises on values JSON
-- cannot hold (functions, cycles, NaN, non-string keys).
function M.encode(v, opts)
  local out = {}
  encode_value(v, out, opts and opts.indent, 0, {})
  return table.concat(out)
end

-- The grammar. Objects and arrays are built by folding captures.
local P, S, R, C, Cc, Ct, Cg, Cmt, V = lpeg.P, lpeg.S, lpeg.R, lpeg.C, lpeg.Cc, lpeg.Ct, lpeg.Cg, lpeg.Cmt, lpeg.V
local ws = S " \t\r\n" ^ 0
local hex = R("09", "af", "AF")

local function utf8_of(hi, lo)
  local cp = tonumber(hi, 16)
  if lo then cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00) end
  if cp >= 0xD800 and cp <= 0xDFFF then return nil end
  return utf8.char(cp)
end

local u4 = P "\\u" * C(hex * hex * hex * hex)
local surrogate = Cmt(u4 * u4, function(_, _, hi, lo)
  local h, l = tonumber(hi, 16), tonumber(lo, 16)
  if h >= 0xD800 and h <= 0xDBFF and l >= 0xDC00 and l <= 0xDFFF then return true, utf8_of(hi, lo) end
  return false
end)
local single = Cmt(u4, function(_, _, hi)
  local s = utf8_of(hi)
  if s then return true, s end
  return false
end)
local simple_esc = P "\\" * C(S '"\\/bfnrt') / { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b",
                                                f = "\f", n = "\n", r = "\r", t = "\t" }
local char = C((P(1) - S '"\\' - R "\0\31") ^ 1)
local str = P '"' * Ct((char + surrogate + single + simple_esc) ^ 0) / table.concat * P '"'

local int = P "-" ^ -1 * (P "0" + R "19" * R "09" ^ 0)
local frac = P "." * R "09" ^ 1
local exp = S "eE" * S "+-" ^ -1 * R "09" ^ 1
local num = C(int * frac ^ -1 * exp ^ -1) / function(s)
  return math.tointeger(tonumber(s)) or tonumber(s)
end

local depth = 0
local enter = Cmt(P(true), function()
  depth = depth + 1
  return depth <= M.MAX_DEPTH
end)
local leave = Cmt(P(true), function() depth = depth - 1 return true end)

local function fold_object(pairs_list)
  local t = {}
  for i = 1, #pairs_list, 2 do t[pairs_list[i]] = pairs_list[i + 1] end
  return t
end

local grammar = P {
  "doc",
  doc = ws * V "value" * ws * -1,
  value = str + num + V "object" + V "array"
    + P "true" * Cc(true) + P "false" * Cc(false) + P "null" * Cc(M.null),
  member = ws * str * ws * P ":" * ws * V "value" * ws,
  object = P "{" * enter * Ct((V "member" * (P "," * V "member") ^ 0) ^ -1 * ws) / fold_object * P "}" * leave,
  element = ws * V "value" * ws,
  array = P "[" * enter * Ct((V "element" * (P "," * V "element") ^ 0) ^ -1 * ws) / M.array * P "]" * leave,
}

--- Decode text; returns the value, or nil, err.
function M.decode(text)
  if type(text) ~= "string" then return nil, "json: expected a string, got " .. type(text) end
  if #text > M.MAX_INPUT then return nil, ("json: input above %d bytes"):format(M.MAX_INPUT) end
  depth = 0
  local ok, v = pcall(lpeg.match, grammar * lpeg.Cp(), text)
  if not ok then return nil, "json: " .. tostring(v) end
  if v == nil then
    return nil, depth > M.MAX_DEPTH and ("json: nesting deeper than %d"):format(M.MAX_DEPTH)
      or "json: malformed text"
  end
  return v
end

return M

-- check.lua - validation of user options: one clear error naming the option
-- and what is accepted.
local lpeg = require "lpeg"

local M = {}

local function fail(what, msg, level)
  error(("gondolin: %s: %s"):format(what, msg), (level or 1) + 2)
end
M.fail = fail

--- Refuse keys of t that are not in the accepted list.
function M.known(what, t, accepted)
  local set = {}
  for _, k in ipairs(accepted) do set[k] = true end
  for k in pairs(t) do
    if not set[k] then
      local list = {}
      for _, a in ipairs(accepted) do list[#list + 1] = a end
      table.sort(list)
      fail(what, ("unknown option '%s' (accepted: %s)"):format(tostring(k), table.concat(list, ", ")), 2)
    end
  end
end

function M.integer(what, v, lo, hi)
  if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
    fail(what, ("expected an integer %d..%d, got %s"):format(lo, hi, tostring(v)), 2)
  end
  v = math.tointeger(v)
  if v < lo or v > hi then fail(what, ("%d is out of range (accepted: %d..%d)"):format(v, lo, hi), 2) end
  return v
end

function M.number(what, v, lo, hi)
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    fail(what, ("expected a number %g..%g, got %s"):format(lo, hi, tostring(v)), 2)
  end
  return v
end

function M.oneof(what, v, list)
  for _, x in ipairs(list) do if v == x then return v end end
  fail(what, ("'%s' is not accepted (accepted: %s)"):format(tostring(v), table.concat(list, ", ")), 2)
end

function M.string(what, v)
  if type(v) ~= "string" then fail(what, "expected a string, got " .. type(v), 2) end
  return v
end

function M.boolean(what, v)
  if type(v) ~= "boolean" then fail(what, "expected true or false, got " .. tostring(v), 2) end
  return v
end

-- "512", "512M", "512MiB", "2G", "2GiB" -> MiB
local digits = lpeg.R "09" ^ 1 / tonumber
local unit = (lpeg.S "mM" * (lpeg.P "iB" + lpeg.P "B") ^ -1) / function() return 1 end
  + (lpeg.S "gG" * (lpeg.P "iB" + lpeg.P "B") ^ -1) / function() return 1024 end
local size_pat = digits * (unit + lpeg.Cc(1)) * -1

function M.memory(what, v)
  local mib
  if type(v) == "number" then
    mib = v
  elseif type(v) == "string" then
    local n, mul = size_pat:match(v)
    mib = n and n * mul
  end
  if not mib or mib ~= math.floor(mib) or mib < 64 or mib > 65536 then
    fail(what, ("'%s' is not a memory size (accepted: MiB as a number, or \"256M\", \"1G\"; 64M..64G)")
      :format(tostring(v)), 2)
  end
  return math.tointeger(mib)
end

-- env: {K = "V"} or {"K=V", ...} -> list of "K=V"
local name = (lpeg.R("az", "AZ") + lpeg.S "_") * (lpeg.R("az", "AZ", "09") + lpeg.S "_") ^ 0
local kv = lpeg.C(name) * "=" * lpeg.C(lpeg.P(1) ^ 0) * -1
M.env_pattern = kv

function M.env(what, t)
  if t == nil then return {} end
  if type(t) ~= "table" then fail(what, "expected a table {NAME = \"value\"} or {\"NAME=value\"}", 2) end
  local out, named = {}, {}
  for i, v in ipairs(t) do
    if type(v) ~= "string" or not kv:match(v) then
      fail(what, ("entry %s is not NAME=value"):format(tostring(v)), 2)
    end
    out[i] = v
  end
  for k, v in pairs(t) do
    if math.type(k) == "integer" then
      if k < 1 or k > #out then fail(what, "mixes a list with holes and names", 2) end
    else
      if type(k) ~= "string" or not (name * -1):match(k) then
        fail(what, ("'%s' is not a variable name (accepted: letters, digits, _)"):format(tostring(k)), 2)
      end
      if type(v) ~= "string" and type(v) ~= "number" then
        fail(what, ("value of %s must be a string"):format(k), 2)
      end
      named[#named + 1] = k .. "=" .. tostring(v)
    end
  end
  table.sort(named)
  for _, e in ipairs(named) do out[#out + 1] = e end
  return out
end

return M

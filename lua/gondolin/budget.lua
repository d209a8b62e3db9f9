-- budget.lua - an instruction budget for user Lua on the hot path (policy
-- hooks, VFS providers and hooks), so a hook that loops forever fails its
-- one request instead of freezing the host process.
--
-- A count hook on the running coroutine adds up the Lua instructions the
-- call executes (time spent yielded costs nothing). Past the budget every
-- further instruction of the user's code raises, so a pcall inside the
-- hook cannot swallow the error and carry on looping. What the hook cannot
-- see: time inside one C function (a huge string.rep, a pathological
-- pattern) and coroutines the user code creates itself.
local M = {}

--- The default budget: about 100 ms of plain Lua on the machines we measured (bench: 20M in 60 ms).
M.DEFAULT = 30000000
M.MAX = 1 << 40

local STEP = 1000   -- instructions between checks

local EXCEEDED = setmetatable({}, { __tostring = function() return "instruction budget exhausted" end })

--- A budget option: nil → default, false → none, else a positive integer.
function M.check(what, v)
  if v == nil then return M.DEFAULT end
  if v == false then return false end
  if math.type(v) ~= "integer" or v < STEP or v > M.MAX then
    error(("gondolin: %s: expected an instruction count %d..%d or false (no budget), got %s")
      :format(what, STEP, M.MAX, tostring(v)), 3)
  end
  return v
end

local run

--- Call fn(...) within limit instructions (false: no limit), as
-- xpcall(fn, handler, ...) would (handler nil: pcall). Returns true,
-- results... or false, err, exhausted (exhausted true when the budget ran
-- out; err then says so). Never raises.
function run(limit, handler, fn, ...)
  if not limit then
    if handler then return xpcall(fn, handler, ...) end
    return pcall(fn, ...)
  end
  local co = coroutine.running()
  local prev = { debug.gethook(co) }
  local used = 0
  local function flood()
    -- every instruction outside run itself raises again
    if debug.getinfo(2, "f").func ~= run then error(EXCEEDED, 0) end
  end
  debug.sethook(co, function()
    used = used + STEP
    if used > limit then
      debug.sethook(co, flood, "", 1)
      error(EXCEEDED, 0)
    end
  end, "", STEP)
  local res
  if handler then res = table.pack(xpcall(fn, handler, ...)) else res = table.pack(pcall(fn, ...)) end
  debug.sethook(co, table.unpack(prev, 1, 3))
  if used > limit then
    return false, ("instruction budget (%d instructions)"):format(limit), true
  end
  return table.unpack(res, 1, res.n)
end
M.run = run

return M

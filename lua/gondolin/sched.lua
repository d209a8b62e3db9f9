-- sched.lua - coroutines on luv's loop: how gondolin's waiting calls wait.
--
-- A task is a coroutine started by run() or spawn(). A waiting call made in
-- a task yields it; the event that completes the wait resumes it from the
-- top of the loop. A waiting call made anywhere else (plain top-level code,
-- a busted spec) drives the loop itself until the wait completes, so code can
-- be written straight-line either way.
local uv = require "luv"

local M = {}

local tasks = {}          -- coroutine -> true while it runs (strong: a waiting task stays alive)
local in_loop = false     -- true while a top-level wait is driving uv.run

local function report(co, err)
  io.stderr:write("gondolin: task failed: ", debug.traceback(co, tostring(err)), "\n")
end

-- Resume co with the given values; handle its end. Never raises.
local function step(co, ...)
  local res = table.pack(coroutine.resume(co, ...))
  if coroutine.status(co) == "dead" then
    tasks[co] = nil
    local hook = M._on_done[co]
    M._on_done[co] = nil
    if hook then hook(table.unpack(res, 1, res.n))
    elseif not res[1] then report(co, res[2]) end
  end
end
M._on_done = setmetatable({}, { __mode = "k" })

--- The running task, or nil outside one.
function M.current()
  local co = coroutine.running()
  if co and tasks[co] then return co end
  return nil
end

--- Start fn(...) as a background task; errors are reported on stderr.
function M.spawn(fn, ...)
  local co = coroutine.create(fn)
  tasks[co] = true
  step(co, ...)
  return co
end

--- A one-shot event: wait(ev) until someone calls fire(ev, ...).
function M.event()
  return { fired = false, waiters = {} }
end

function M.fire(ev, ...)
  if ev.fired then return end
  ev.fired = true
  ev.n = select("#", ...)
  ev.values = { ... }
  local waiters = ev.waiters
  ev.waiters = {}
  for _, co in ipairs(waiters) do step(co) end
end

local function drive(done)
  if in_loop then
    error("gondolin: a waiting call outside a task, inside a loop callback; " ..
      "run it in gondolin.spawn(fn) instead", 3)
  end
  in_loop = true
  local ok, err = pcall(function()
    while not done() do
      if not uv.run("once") and not done() then
        error("gondolin: deadlock: nothing left that could complete this wait", 0)
      end
    end
    uv.run("nowait")   -- finish handles closed meanwhile (see M.flush)
  end)
  in_loop = false
  if not ok then error(err, 0) end
end

--- Let libuv finish closing handles, when the caller is outside the loop.
-- A handle whose close is still pending when the Lua state is closed (busted
-- does that at exit) makes luv's own teardown crash, so whoever closes
-- handles from plain code calls this.
function M.flush()
  if not in_loop and not M.current() then
    in_loop = true
    pcall(uv.run, "nowait")
    in_loop = false
  end
end

--- Can the caller wait here (in a task, or in plain code outside the loop)?
function M.can_wait()
  return M.current() ~= nil or not in_loop
end

--- Wait for ev; returns the values it was fired with.
-- @param timeout optional seconds; on expiry returns nil, "timeout", "timeout"
-- (the event itself stays pending).
function M.wait(ev, timeout)
  if not ev.fired then
    local co, expired, timer = M.current(), false, nil
    if timeout then
      timer = uv.new_timer()
      timer:start(math.max(0, math.floor(timeout * 1000 + 0.5)), 0, function()
        expired = true
        if co then
          for i, w in ipairs(ev.waiters) do
            if w == co then table.remove(ev.waiters, i) break end
          end
          step(co)
        end
      end)
    end
    if co then
      ev.waiters[#ev.waiters + 1] = co
      while not ev.fired and not expired do coroutine.yield() end
    else
      drive(function() return ev.fired or expired end)
    end
    if timer then
      timer:close()
      if not co then M.flush() end
    end
    if not ev.fired then return nil, "timeout", "timeout" end
  end
  return table.unpack(ev.values, 1, ev.n)
end

--- Sleep for seconds (yields in a task, drives the loop otherwise).
function M.sleep(seconds)
  local ev = M.event()
  local t = uv.new_timer()
  t:start(math.max(0, math.floor(seconds * 1000 + 0.5)), 0, function() M.fire(ev) end)
  M.wait(ev)
  t:close()
  M.flush()
end

--- Run fn(...) as a task and drive the loop until it finishes.
-- Returns fn's results; re-raises its error with a traceback.
function M.run(fn, ...)
  if M.current() then return fn(...) end
  local done = M.event()
  local co = coroutine.create(fn)
  tasks[co] = true
  M._on_done[co] = function(ok, ...)
    if ok then M.fire(done, true, ...) else
      M.fire(done, false, debug.traceback(co, tostring((...))))
    end
  end
  step(co, ...)
  local res = table.pack(M.wait(done))
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

return M

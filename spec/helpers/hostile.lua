-- hostile.lua - what the hostile-guest battery (spec/hostile) measures of
-- the host process around each attack: RSS, descriptors, QEMU children,
-- scratch files; and one printed line per attack.
local uv = require "luv"
local files = require "gondolin.files"

local M = {}

M.RSS_BOUND_MIB = 768   -- the host process's RSS stays under this throughout

local function status_kib(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read "a"
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

function M.rss_mib() return status_kib("VmRSS") / 1024 end
function M.peak_mib() return status_kib("VmHWM") / 1024 end

function M.fds()
  local d, n = assert(uv.fs_scandir("/proc/self/fd")), 0
  while uv.fs_scandir_next(d) do n = n + 1 end
  return n
end

--- What each descriptor is (fd -> readlink), for messages.
function M.fd_list()
  local d, out = assert(uv.fs_scandir("/proc/self/fd")), {}
  while true do
    local name = uv.fs_scandir_next(d)
    if not name then break end
    out[tonumber(name)] = uv.fs_readlink("/proc/self/fd/" .. name) or "?"
  end
  return out
end

--- Descriptors in now that were not in before, as text.
function M.fd_diff(before, now)
  local extra = {}
  for fd, what in pairs(now) do
    if before[fd] ~= what then extra[#extra + 1] = fd .. "=" .. what end
  end
  table.sort(extra)
  return table.concat(extra, " ")
end

--- QEMU processes whose parent is this process.
function M.qemus()
  local me, n = uv.os_getpid(), 0
  local d = uv.fs_scandir("/proc")
  while true do
    local name = uv.fs_scandir_next(d)
    if not name then break end
    if name:match("^%d+$") then
      local f = io.open("/proc/" .. name .. "/stat")
      local s = f and f:read "a"
      if f then f:close() end
      local comm, ppid = (s or ""):match("^%d+ %((.-)%) %S (%d+)")
      if comm and comm:match("^qemu") and tonumber(ppid) == me then n = n + 1 end
    end
  end
  return n
end

--- Scratch files this process owns (files.scratch names carry our pid).
function M.scratch()
  local n, pid = 0, tostring(uv.os_getpid())
  for _, name in ipairs(files.list(files.scratch_dir())) do
    if name:match("^[%w_]+%-" .. pid .. "%-") then n = n + 1 end
  end
  return n
end

--- The process's resting state, taken once libuv's loop-wide descriptors
-- exist (its first child process opens the SIGCHLD pipe for good).
function M.baseline()
  require("gondolin.command").check { "true" }
  collectgarbage() collectgarbage()
  return { fds = M.fds(), list = M.fd_list(), qemus = M.qemus(), scratch = M.scratch() }
end

--- After the VMs are closed: everything is back to the baseline; prints
-- the figures.
function M.back_to(base)
  require("gondolin").sleep(0.2)
  collectgarbage() collectgarbage()
  io.stdout:write(("\nhostile: after close: fds %d (baseline %d), qemu %d, scratch %d, peak rss %.0f MiB\n")
    :format(M.fds(), base.fds, M.qemus(), M.scratch(), M.peak_mib()))
  assert(M.fds() == base.fds, ("descriptors %d, baseline %d: %s"):format(M.fds(), base.fds,
    M.fd_diff(base.list, M.fd_list())))
  assert(M.qemus() == base.qemus, "QEMU processes left")
  assert(M.scratch() == base.scratch, "scratch files left")
end

--- Run attack(); check and print what it did to the host. The attack
-- returns a table of figures to print (requests served, ...).
-- Descriptors an attack may leave open: idle upstream connections kept in
-- the pool (both ends live in this process when the server is the spec's).
M.POOL_SLACK = 2 * 32

function M.measure(name, attack, slack)
  collectgarbage() collectgarbage()
  local before = { fds = M.fds(), rss = M.rss_mib(), qemus = M.qemus(), scratch = M.scratch() }
  local t0 = uv.hrtime()
  local figures = attack() or {}
  collectgarbage() collectgarbage()
  local after = { fds = M.fds(), rss = M.rss_mib(), qemus = M.qemus(), scratch = M.scratch() }
  local extra = {}
  for k, v in pairs(figures) do extra[#extra + 1] = ("%s %s"):format(k, tostring(v)) end
  table.sort(extra)
  io.stdout:write(("\nhostile: %-28s %5.1f s  rss %4.0f -> %4.0f MiB (peak %4.0f)  fds %d -> %d  qemu %d -> %d%s\n")
    :format(name, (uv.hrtime() - t0) / 1e9, before.rss, after.rss, M.peak_mib(), before.fds, after.fds,
      before.qemus, after.qemus, #extra > 0 and "  " .. table.concat(extra, ", ") or ""))
  assert(M.peak_mib() < M.RSS_BOUND_MIB, ("peak RSS %.0f MiB over the %d MiB bound"):format(M.peak_mib(), M.RSS_BOUND_MIB))
  assert(after.fds <= before.fds + (slack or 0), ("descriptors: %d before, %d after"):format(before.fds, after.fds))
  assert(after.qemus <= before.qemus, ("QEMU processes left: %d"):format(after.qemus))
  assert(after.scratch <= before.scratch, ("scratch files left: %d"):format(after.scratch - before.scratch))
  return figures
end

return M

-- Shared helpers for specs.
local uv = require "luv"

local M = {}

--- Resident set size of this process in KiB.
function M.rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

--- Is a process with this pid alive (and not a zombie)?
function M.alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- sha256 of a string, by the host's sha256sum.
function M.sha256(data)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("sha256sum " .. tmp)
  local out = p:read("a")
  p:close()
  os.remove(tmp)
  return out:match("^(%x+)")
end

--- Seconds since some fixed point.
function M.now() return uv.hrtime() / 1e9 end

--- Run a shell command; return exit status and stdout.
function M.sh(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return rc, (out:gsub("__rc=%d+%s*$", ""))
end

return M

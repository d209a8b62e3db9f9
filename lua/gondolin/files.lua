-- files.lua - host file helpers: the cache directory, atomic writes, tree
-- removal, hashing, and scratch files that outlive no process.
--
-- Scratch files (root disk overlays, image build trees) live in
-- $XDG_CACHE_HOME/gondolin/tmp and carry their owner's pid and process start
-- time in their names. Whoever creates the first one in a process sweeps
-- the names whose owner is gone, so a process killed with SIGKILL leaves
-- nothing behind for longer than the next start.
local uv = require "luv"

local M = {}

function M.exists(path)
  return uv.fs_stat(path) ~= nil
end

function M.is_dir(path)
  local st = uv.fs_stat(path)
  return st ~= nil and st.type == "directory"
end

function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.cache_dir()
  local base = os.getenv "XDG_CACHE_HOME"
  if not base or base == "" then
    base = (os.getenv "HOME" or "/tmp") .. "/.cache"
  end
  return base .. "/gondolin"
end

--- Create dir and its parents; returns true or nil, err.
function M.mkdir_p(dir, mode)
  if M.is_dir(dir) then return true end
  local parent = dir:match("^(.+)/[^/]+/*$")
  if parent and not M.is_dir(parent) then
    local ok, err = M.mkdir_p(parent, mode)
    if not ok then return nil, err end
  end
  local ok, err, code = uv.fs_mkdir(dir, mode or 493)
  if not ok and code ~= "EEXIST" then return nil, err end
  return true
end

--- Like mkdir_p, but raising: a cache directory we cannot make is fatal.
function M.need_dir(dir)
  local ok, err = M.mkdir_p(dir)
  if not ok then error("gondolin: cannot create directory " .. dir .. ": " .. tostring(err), 0) end
  return dir
end

--- Whole file as a string, or nil, err.
function M.read(path, max)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read(max or "a")
  f:close()
  return data or ""
end

--- Write data to path through path.tmp-<pid> and a rename; true or nil, err.
function M.write_atomic(path, data, mode)
  local tmp = ("%s.tmp-%d"):format(path, uv.os_getpid())
  local fd, err = uv.fs_open(tmp, "w", mode or 420)
  if not fd then return nil, err end
  local ok, werr = uv.fs_write(fd, data, 0)
  local fok = uv.fs_fsync(fd)
  uv.fs_close(fd)
  if not ok or not fok then
    uv.fs_unlink(tmp)
    return nil, werr or "fsync failed"
  end
  local rok, rerr = uv.fs_rename(tmp, path)
  if not rok then
    uv.fs_unlink(tmp)
    return nil, rerr
  end
  return true
end

--- Names in a directory (sorted), or {} when it cannot be read.
function M.list(dir)
  local names = {}
  local h = uv.fs_scandir(dir)
  if not h then return names end
  while true do
    local name = uv.fs_scandir_next(h)
    if not name then break end
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

--- Remove path and everything below it, never leaving its filesystem (a
-- build tree with a stale mount under it must not reach into the mount).
-- Returns true, or nil, err for the first failure.
function M.rm_tree(path)
  local st = uv.fs_lstat(path)
  if not st then return true end
  local dev = st.dev
  local function rm(p, s)
    if s.type == "directory" then
      if s.dev ~= dev then return nil, p .. ": another filesystem is mounted here" end
      for _, name in ipairs(M.list(p)) do
        local child = p .. "/" .. name
        local cs = uv.fs_lstat(child)
        if cs then
          local ok, err = rm(child, cs)
          if not ok then return nil, err end
        end
      end
      local ok, err, code = uv.fs_rmdir(p)
      if not ok and code ~= "ENOENT" then return nil, err end
      return true
    end
    local ok, err, code = uv.fs_unlink(p)
    if not ok and code ~= "ENOENT" then return nil, err end
    return true
  end
  return rm(path, st)
end

--- Bytes a file holds, or nil.
function M.size(path)
  local st = uv.fs_stat(path)
  return st and st.size
end

-- sha256 memo: path -> {key, digest}; the key changes when the file does
local sha_memo = {}

--- Hex sha256 of a file, or nil, err. Remembered per process while the
-- file's size, mtime and inode stay the same.
function M.sha256(path)
  local st = uv.fs_stat(path)
  if not st then return nil, path .. ": no such file" end
  local key = ("%d:%d:%d.%d"):format(st.ino, st.size, st.mtime.sec, st.mtime.nsec)
  local m = sha_memo[path]
  if m and m.key == key then return m.digest end
  local p = io.popen("sha256sum < " .. M.shell_quote(path) .. " 2>/dev/null")
  local out = p and p:read("a") or ""
  if p then p:close() end
  local digest = out:match("^(%x+)")
  if not digest or #digest ~= 64 then return nil, "cannot hash " .. path end
  sha_memo[path] = { key = key, digest = digest }
  return digest
end

--- Hex sha256 of a string (used for ids; the data is small).
function M.sha256_string(data)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local digest = M.sha256(tmp)
  os.remove(tmp)
  sha_memo[tmp] = nil
  return digest
end

-- Start time of a process (clock ticks since boot), or nil when it is gone.
local function start_time(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local rest = s and s:match("^.*%)%s(.*)$")   -- the name in (...) may hold spaces
  if not rest then return nil end
  local i = 0
  for field in rest:gmatch("%S+") do
    i = i + 1
    if i == 20 then return field end          -- field 22 of the whole line
  end
  return nil
end

local me = { pid = math.tointeger(uv.os_getpid()) }
me.start = start_time(me.pid) or "0"
local swept, serial = false, 0

--- The scratch directory ($XDG_CACHE_HOME/gondolin/tmp).
function M.scratch_dir()
  return M.cache_dir() .. "/tmp"
end

--- Remove scratch entries whose owning process is gone. Returns how many.
function M.sweep()
  local dir, n = M.scratch_dir(), 0
  for _, name in ipairs(M.list(dir)) do
    local pid, start = name:match("^[%w_]+%-(%d+)%-(%d+)%-")
    if pid and start_time(pid) ~= start then
      if M.rm_tree(dir .. "/" .. name) then n = n + 1 end
    end
  end
  return n
end

--- A fresh scratch path "<dir>/<kind>-<pid>-<start>-<n><suffix>" (nothing
-- is created). The first call in a process sweeps leftovers first.
function M.scratch(kind, suffix)
  local dir = M.need_dir(M.scratch_dir())
  if not swept then
    swept = true
    M.sweep()
  end
  serial = serial + 1
  return ("%s/%s-%d-%s-%d%s"):format(dir, kind, me.pid, me.start, serial, suffix or "")
end

-- Cleanups to run when the process exits early (a signal, os.exit).
local pending = {}

--- Register fn to run by run_exit_cleanups(); returns a token for cancel().
function M.on_exit(fn)
  local token = {}
  pending[token] = fn
  return token
end

function M.cancel(token)
  if token then pending[token] = nil end
end

--- Run every registered cleanup (errors are ignored: we are leaving).
function M.run_exit_cleanups()
  local list = pending
  pending = {}
  for _, fn in pairs(list) do pcall(fn) end
end

return M

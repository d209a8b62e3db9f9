-- fs.lua - vm.fs: the host's own file API on the guest's tree.
--
-- A path under one of the VM's mounts is served on the host, straight from
-- its provider (vfs.lua's Server:request), with the mount's rules applied:
-- what the guest may not see or change, neither may vm.fs. Symlinks inside
-- mounts are followed here, at most 40 of them, as the guest's kernel
-- would. Any other path is the guest's own, reached through the agent
-- with busybox-compatible commands; file data streams in and out in
-- chunks, so large files never sit in memory whole unless the caller asks
-- for a string.
--
-- Every call returns its result, or nil and an error that names the call,
-- the path and the reason ("ENOENT" names for mounted paths, the guest
-- command's message otherwise). It may wait (yields in a task).
local vfs = require "gondolin.vfs"
local check = require "gondolin.check"

local M = {}

local FS = {}
FS.__index = FS

local CHUNK = 128 * 1024    -- FS_IO_MAX
local LINK_HOPS = 40
local S_IFMT, S_IFDIR, S_IFLNK = 0xf000, 0x4000, 0xa000

function M.new(vm)
  return setmetatable({ vm = vm }, FS)
end

local function fail(what, path, err)
  return nil, ("gondolin: vm.fs:%s %s: %s"):format(what, path, tostring(err))
end

local function checked(what, path)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    check.fail("vm.fs:" .. what, "expected an absolute guest path, got " .. tostring(path), 2)
  end
  return vfs.clean(path)
end

function FS:_server()
  local vm = self.vm
  if vm.closed or not vm.running then check.fail("vm.fs", "the vm is not running", 2) end
  return vm.vfs
end

-- The mounted path with symlinks of mounts resolved, or the path as it is
-- when it leaves the mounts; nil, err for ELOOP or a failed readlink.
function FS:_resolve(srv, path, follow_last)
  for _ = 1, LINK_HOPS do
    local parts, cur, again = vfs.split(path), "/", false
    for i, name in ipairs(parts) do
      local nxt = vfs.join(cur, name)
      if i == #parts and not follow_last then return path end
      if srv:covers(nxt) then
        local r = srv:request("lookup", nxt)
        if r and r.attr.mode & S_IFMT == S_IFLNK then
          local l, err = srv:request("readlink", nxt)
          if not l then return nil, err end
          local rest = table.concat(parts, "/", i + 1)
          local base = l.target:sub(1, 1) == "/" and l.target or vfs.join(cur, l.target)
          path = vfs.clean(base .. (rest ~= "" and "/" .. rest or ""))
          again = true
          break
        end
      end
      cur = nxt
    end
    if not again then return path end
  end
  return nil, "ELOOP"
end

-- (srv, resolved path) when the path is served on the host, else nil, path.
function FS:_where(what, path, follow_last)
  path = checked(what, path)
  local srv = self:_server()
  if not srv then return nil, path end
  local p, err = self:_resolve(srv, path, follow_last ~= false)
  if not p then return false, path, err end
  if srv:covers(p) then return srv, p end
  return nil, p
end

-- A guest command; returns stdout or nil, stderr.
function FS:_sh(script, args, opts)
  local argv = { "/bin/sh", "-c", script, "sh" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r, err = self.vm:exec(argv, opts)
  if not r then return nil, err end
  if r.code ~= 0 then return nil, (r.stderr:gsub("%s+$", "")) end
  return r.stdout or true
end

-- open a mounted file; returns the result with fh
local function open(srv, path, fields)
  return srv:request(fields.create and "create" or "open", path, fields)
end

--- Contents of a file. opts.sink = function(chunk) streams it instead
-- (read returns true then).
function FS:read(path, opts)
  opts = opts or {}
  local srv, p, err = self:_where("read", path)
  if srv == false then return fail("read", path, err) end
  local sink, parts = opts.sink, {}
  local put = sink or function(c) parts[#parts + 1] = c end
  if not srv then
    local ok, e = self:_sh('exec cat -- "$1"', { p }, sink and {
      on_stdout = function(c) sink(c) end } or { max_output = math.maxinteger })
    if not ok then return fail("read", path, e) end
    return sink and true or ok
  end
  local o, oerr = open(srv, p, { access = "read" })
  if not o then return fail("read", path, oerr) end
  local off = 0
  while true do
    local r, rerr = srv:request("read", nil, { fh = o.fh, offset = off, size = CHUNK })
    if not r then
      srv:request("release", nil, { fh = o.fh })
      return fail("read", path, rerr)
    end
    if #r.data == 0 then break end
    put(r.data)
    off = off + #r.data
  end
  srv:request("release", nil, { fh = o.fh })
  return sink and true or table.concat(parts)
end

-- data: a string, or a function returning chunks until nil
local function chunks(data)
  if type(data) == "string" then
    local pos = 1
    return function()
      if pos > #data then return nil end
      local c = data:sub(pos, pos + CHUNK - 1)
      pos = pos + CHUNK
      return c
    end
  end
  if type(data) ~= "function" then
    check.fail("vm.fs:write", "data must be a string or a function returning chunks, got " .. type(data), 3)
  end
  return data
end

function FS:_put(what, path, data, append)
  local next_chunk = chunks(data)
  local srv, p, err = self:_where(what, path)
  if srv == false then return fail(what, path, err) end
  if not srv then
    local proc = self.vm:spawn({ "/bin/sh", "-c", append and 'exec cat >> "$1"' or 'exec cat > "$1"', "sh", p },
      { stdin = true })
    for c in next_chunk do
      if #c > 0 then
        local ok, werr = proc:write(c)
        if not ok then proc:kill() return fail(what, path, werr) end
      end
    end
    proc:close_stdin()
    local r, werr = proc:wait()
    if not r then return fail(what, path, werr) end
    if r.code ~= 0 then return fail(what, path, (r.stderr or ""):gsub("%s+$", "")) end
    return true
  end
  local o, oerr = open(srv, p, { create = true, mode = 420, access = "write", trunc = not append,
                                 append = append })
  if not o then return fail(what, path, oerr) end
  local off, wrote = 0, true
  for c in next_chunk do
    local pos = 1
    while pos <= #c do
      local piece = pos == 1 and #c <= CHUNK and c or c:sub(pos, pos + CHUNK - 1)
      local r, werr = srv:request("write", nil, { fh = o.fh, offset = off, data = piece })
      if not r or r.size == 0 then wrote = werr or "EIO" break end
      off, pos = off + r.size, pos + r.size
    end
    if wrote ~= true then break end
  end
  srv:request("release", nil, { fh = o.fh })
  if wrote ~= true then return fail(what, path, wrote) end
  return true
end

--- Replace a file's contents (created 0644 when missing).
function FS:write(path, data) return self:_put("write", path, data, false) end

--- Append to a file (created when missing).
function FS:append(path, data) return self:_put("append", path, data, true) end

--- Names in a directory, sorted (no "." or "..").
function FS:list(path)
  local srv, p, err = self:_where("list", path)
  if srv == false then return fail("list", path, err) end
  local names = {}
  if not srv then
    local out, e = self:_sh('cd -- "$1" && for f in * .[!.]* ..?*; do ' ..
      '{ [ -e "$f" ] || [ -L "$f" ]; } && printf "%s\\0" "$f"; done; true', { p })
    if not out then return fail("list", path, e) end
    for n in out:gmatch("([^%z]+)%z") do names[#names + 1] = n end
  else
    local off = 0
    repeat
      local r, rerr = srv:request("readdir", p, { offset = off })
      if not r then return fail("list", path, rerr) end
      for _, e in ipairs(r.entries) do names[#names + 1] = e[1] end
      off = off + #r.entries
    until r.eof or #r.entries == 0
  end
  table.sort(names)
  return names
end

local function stat_of(a)
  return { type = vfs.TYPE_NAMES[a.mode & S_IFMT] or "other", mode = a.mode & 0xfff,
           size = a.size, nlink = a.nlink, uid = a.uid, gid = a.gid, ino = a.ino,
           atime = a.atime / 1e9, mtime = a.mtime / 1e9, ctime = a.ctime / 1e9 }
end

local GUEST_TYPES = { ["regular file"] = "file", ["regular empty file"] = "file", directory = "dir",
                      ["symbolic link"] = "symlink", fifo = "fifo", socket = "socket" }

--- Attributes, following symlinks: { type, size, mode, mtime, ... }.
function FS:stat(path)
  local srv, p, err = self:_where("stat", path)
  if srv == false then return fail("stat", path, err) end
  if srv then
    local r, rerr = srv:request("getattr", p)
    if not r then return fail("stat", path, rerr) end
    return stat_of(r.attr)
  end
  local out, e = self:_sh('exec stat -L -c "%s %a %h %u %g %i %X %Y %Z %F" -- "$1"', { p })
  if not out then return fail("stat", path, e) end
  local size, mode, nlink, uid, gid, ino, at, mt, ct, kind =
    out:match("^(%d+) (%x+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) ([^\n]+)")
  if not size then return fail("stat", path, "unexpected stat output") end
  return { type = GUEST_TYPES[kind] or "other", mode = tonumber(mode, 8), size = tonumber(size),
           nlink = tonumber(nlink), uid = tonumber(uid), gid = tonumber(gid), ino = tonumber(ino),
           atime = tonumber(at), mtime = tonumber(mt), ctime = tonumber(ct) }
end

--- Make a directory (opts.parents: and its missing parents; no error if it exists).
function FS:mkdir(path, opts)
  opts = opts or {}
  local srv, p, err = self:_where("mkdir", path, false)
  if srv == false then return fail("mkdir", path, err) end
  if not srv then
    local ok, e = self:_sh(opts.parents and 'exec mkdir -p -- "$1"' or 'exec mkdir -- "$1"', { p })
    if not ok then return fail("mkdir", path, e) end
    return true
  end
  if opts.parents then
    local parent = p:match("^(.*)/[^/]+$")
    if parent and parent ~= "" and srv:covers(parent) and not srv:request("getattr", parent) then
      local ok, perr = self:mkdir(parent, opts)
      if not ok then return nil, perr end
    end
  end
  local r, merr = srv:request("mkdir", p, { mode = opts.mode or 493 })
  if not r and not (opts.parents and merr == "EEXIST") then return fail("mkdir", path, merr) end
  return true
end

function FS:_remove_tree(srv, p)
  local r = srv:request("lookup", p)
  if r and r.attr.mode & S_IFMT == S_IFDIR then
    local names = {}
    repeat
      local d, err = srv:request("readdir", p, { offset = 0 })
      if not d then return nil, err end
      for _, e in ipairs(d.entries) do names[#names + 1] = e[1] end
      for _, n in ipairs(names) do
        local ok, rerr = self:_remove_tree(srv, vfs.join(p, n))
        if not ok then return nil, rerr end
      end
      local done = d.eof or #d.entries == 0
      names = {}
    until done
    local ok, err = srv:request("rmdir", p)
    if not ok then return nil, err end
    return true
  end
  local ok, err = srv:request("unlink", p)
  if not ok then return nil, err end
  return true
end

--- Remove a file, symlink or empty directory (opts.recursive: a whole tree).
function FS:remove(path, opts)
  opts = opts or {}
  local srv, p, err = self:_where("remove", path, false)
  if srv == false then return fail("remove", path, err) end
  if not srv then
    local ok, e = self:_sh(opts.recursive and 'exec rm -rf -- "$1"' or
      'if [ -d "$1" ] && [ ! -L "$1" ]; then exec rmdir -- "$1"; else exec rm -- "$1"; fi', { p })
    if not ok then return fail("remove", path, e) end
    return true
  end
  local ok, rerr
  if opts.recursive then
    ok, rerr = self:_remove_tree(srv, p)
  else
    local a = srv:request("lookup", p)
    ok, rerr = srv:request(a and a.attr.mode & S_IFMT == S_IFDIR and "rmdir" or "unlink", p)
  end
  if not ok then return fail("remove", path, rerr) end
  return true
end

--- Rename (both paths in the same mount, or both outside mounts).
function FS:rename(from, to)
  local srv, p, err = self:_where("rename", from, false)
  if srv == false then return fail("rename", from, err) end
  local srv2, p2 = self:_where("rename", to, false)
  if srv and srv2 then
    local ok, rerr = srv:request("rename", p, { to = p2, flags = 0 })
    if not ok then return fail("rename", from, rerr) end
    return true
  end
  if srv or srv2 then return fail("rename", from, "EXDEV (one path is mounted, the other is not)") end
  local ok, e = self:_sh('exec mv -f -- "$1" "$2"', { p, p2 })
  if not ok then return fail("rename", from, e) end
  return true
end

return M

-- vfs.lua - the guest's FUSE mounts, served on the host (docs/lua-api.md).
--
-- Theory of Operation
--
-- A mount's value is a provider: realfs (C, api/l_vfs.c), any Lua table of
-- methods (memory() is one), or a wrapper (readonly, shadow) around one.
-- server() flattens the wrappers into routes of the C server
-- (vfs/server.c): a provider plus rules (readonly, hidden paths, paths that
-- deny writes) that the C server applies to every provider alike, and
-- extra routes for a shadow's tmpfs paths. Requests for C providers are
-- answered in C; the others reach serve() below on a task, which calls the
-- vfs hooks and the Lua provider through the bridge (OPS), and answers.
--
-- Lua providers speak paths and seconds: getattr(path) returns
-- { type = "file"|"dir"|"symlink", size, mode (permission bits), mtime, ... }.
-- The bridge turns that into the wire's attr (type bits in mode, ns), and
-- every result is checked: a wrong type is EIO for that call and one
-- message naming the provider and the method. A method that raises is EIO
-- too. Missing methods are ENOSYS, or EROFS for the mutating ones.
local lpeg = require "lpeg"
local uv = require "luv"
local core = require "gondolin.core"
local sched = require "gondolin.sched"
local check = require "gondolin.check"
local budget = require "gondolin.budget"

local M = {}

local FS_REPLY = 0x80
local DIR_MAX = 512               -- entries per READDIR reply (vfs.h VFS_DIR_MAX)
local MOUNTS_MAX = 16             -- guest mounts (the agent's AGENT_MOUNTS_MAX)
local S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0xf000, 0x4000, 0x8000, 0xa000
local TYPES = { file = S_IFREG, dir = S_IFDIR, symlink = S_IFLNK }
local TYPE_NAMES = { [S_IFREG] = "file", [S_IFDIR] = "dir", [S_IFLNK] = "symlink",
                     [0x1000] = "fifo", [0xc000] = "socket" }
M.TYPE_NAMES = TYPE_NAMES
local DEFAULT_PERM = { file = 420, dir = 493, symlink = 511 }   -- 0644, 0755, 0777

local ERRNOS = {}
for n in ("EPERM ENOENT EIO EBADF EACCES EEXIST EXDEV ENOTDIR EISDIR EINVAL EFBIG ENOSPC " ..
          "EROFS EMLINK ENAMETOOLONG ENOTEMPTY ELOOP ENOSYS ENOTSUP ERANGE ETXTBSY EMFILE " ..
          "ENFILE EAGAIN"):gmatch("%S+") do ERRNOS[n] = true end
M.ERRNOS = ERRNOS

-- A normalised absolute path: "/" or "/a/b", no ".", ".." or empty parts.
local seg = (1 - lpeg.S "/\0") ^ 1 - ((lpeg.P ".." + ".") * -(1 - lpeg.P "/"))
local normal = lpeg.P "/" * -1 + (lpeg.P "/" * seg) ^ 1 * -1
function M.normal(path)
  return type(path) == "string" and #path <= 4096 and normal:match(path) ~= nil
end

-- Split "/a/b" into { "a", "b" }.
local parts = lpeg.Ct((lpeg.P "/" * lpeg.C((1 - lpeg.P "/") ^ 1)) ^ 0 * lpeg.P "/" ^ -1)
function M.split(path) return parts:match(path) end

--- Normalise a path that may hold ".", ".." and repeated slashes.
function M.clean(path)
  local out = {}
  for p in path:gmatch("[^/]+") do
    if p == ".." then out[#out] = nil elseif p ~= "." then out[#out + 1] = p end
  end
  return "/" .. table.concat(out, "/")
end

local function join(dir, name)
  return dir == "/" and "/" .. name or dir .. "/" .. name
end
M.join = join

-- -------------------------------------------------------------------------
-- Provider constructors

local Spec = {}
Spec.__index = Spec
Spec.__tostring = function(s) return "gondolin.vfs." .. s.kind end

local function spec(t) return setmetatable(t, Spec) end
local function is_spec(v) return getmetatable(v) == Spec end

--- A host directory, confined to it. opts.walk: resolve paths by a
-- component walk even where openat2 works (the fallback's own specs).
function M.realfs(root, opts)
  if type(root) ~= "string" or root == "" then
    check.fail("vfs.realfs", "expected a host directory path, got " .. tostring(root))
  end
  if opts ~= nil and type(opts) ~= "table" then check.fail("vfs.realfs", "options must be a table") end
  if opts then check.known("vfs.realfs", opts, { "walk" }) end
  return spec { kind = "realfs", root = root, walk = opts and opts.walk == true }
end

--- The provider p, with every mutation EROFS.
function M.readonly(p)
  if type(p) ~= "table" then check.fail("vfs.readonly", "expected a provider, got " .. type(p)) end
  return spec { kind = "readonly", inner = p }
end

local function path_list(what, v)
  local out = {}
  if v == nil then return out end
  if type(v) ~= "table" then check.fail(what, "expected a list of paths, got " .. type(v), 2) end
  for i, p in ipairs(v) do
    if not M.normal(p) or p == "/" then
      check.fail(what, ("entry %d (%s) is not a normalised absolute path inside the mount " ..
        "(like \"/.env\")"):format(i, tostring(p)), 2)
    end
    out[#out + 1] = p
  end
  return out
end

--- p with paths hidden (hide), refusing writes (deny_write), or served
-- from memory instead (tmpfs).
function M.shadow(p, opts)
  if type(p) ~= "table" then check.fail("vfs.shadow", "expected a provider, got " .. type(p)) end
  opts = opts or {}
  if type(opts) ~= "table" then check.fail("vfs.shadow", "options must be a table") end
  check.known("vfs.shadow", opts, { "hide", "deny_write", "tmpfs" })
  return spec { kind = "shadow", inner = p, hide = path_list("vfs.shadow option 'hide'", opts.hide),
                deny = path_list("vfs.shadow option 'deny_write'", opts.deny_write),
                tmpfs = path_list("vfs.shadow option 'tmpfs'", opts.tmpfs) }
end

--- An in-memory tree (a Lua provider; vfs/memory.lua).
function M.memory(opts)
  return require("gondolin.vfs.memory").new(opts)
end

-- Flatten a mount value: { base = realfs spec | Lua table, readonly, hide,
-- deny, tmpfs }.
local function flatten(what, v, acc)
  acc = acc or { readonly = false, hide = {}, deny = {}, tmpfs = {} }
  if is_spec(v) then
    if v.kind == "realfs" then acc.base = v return acc end
    if v.kind == "readonly" then acc.readonly = true end
    if v.kind == "shadow" then
      for _, k in ipairs { "hide", "deny", "tmpfs" } do
        for _, p in ipairs(v[k]) do acc[k][#acc[k] + 1] = p end
      end
    end
    return flatten(what, v.inner, acc)
  end
  if type(v) ~= "table" then
    check.fail(what, "expected a provider (vfs.realfs, vfs.memory, vfs.readonly, vfs.shadow " ..
      "or a table of methods), got " .. type(v), 3)
  end
  acc.base = v
  return acc
end

local RESERVED = { "/proc", "/sys", "/dev" }

--- Check the vm's mounts option; returns a list of flattened mounts sorted
-- so that a mount inside another comes after it. Errors name the mount.
function M.check_mounts(mounts)
  local list = {}
  if mounts == nil then return list end
  if type(mounts) ~= "table" then check.fail("vm option 'mounts'", "expected a table of guest path = provider") end
  for path, v in pairs(mounts) do
    local what = ("vm option 'mounts' [%s]"):format(tostring(path))
    if not M.normal(path) then
      check.fail(what, "the guest path must be absolute and normalised (like \"/workspace\")")
    end
    if path == "/" then check.fail(what, "cannot mount over the guest's root") end
    for _, r in ipairs(RESERVED) do
      if path == r or path:sub(1, #r + 1) == r .. "/" then
        check.fail(what, "cannot mount on " .. r .. " (the guest kernel's own)")
      end
    end
    local m = flatten(what, v)
    m.path = path
    if is_spec(m.base) then
      local root = m.base.root
      local st = uv.fs_stat(root)
      if not st then check.fail(what, "realfs root " .. root .. " does not exist") end
      if st.type ~= "directory" then check.fail(what, "realfs root " .. root .. " is not a directory") end
    end
    for _, t in ipairs(m.tmpfs) do
      for _, h in ipairs(m.hide) do
        if t == h then check.fail(what, "path " .. t .. " is both hidden and tmpfs") end
      end
    end
    list[#list + 1] = m
  end
  if #list > MOUNTS_MAX then
    check.fail("vm option 'mounts'", ("%d mounts (at most %d)"):format(#list, MOUNTS_MAX))
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  -- a mount inside another needs its mount point there: the agent makes it,
  -- which a readonly or hiding parent would refuse at boot
  for i, m in ipairs(list) do
    for j = i - 1, 1, -1 do
      local up = list[j]
      if m.path:sub(1, #up.path + 1) == up.path .. "/" then
        local rel = m.path:sub(#up.path + 1)
        local what = ("vm option 'mounts' [%s]"):format(m.path)
        for _, h in ipairs(up.hide) do
          if rel == h or rel:sub(1, #h + 1) == h .. "/" then
            check.fail(what, "lies under " .. up.path .. h .. ", which that mount hides")
          end
        end
        if up.readonly and is_spec(up.base) and not uv.fs_stat(up.base.root .. rel) then
          check.fail(what, ("needs the directory %s in %s's read-only root %s"):format(rel, up.path, up.base.root))
        end
        break
      end
    end
  end
  return list
end

local function b64(s)
  local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return (s:gsub("..?.?", function(c)
    local a, b, d = c:byte(1, 3)
    local n = a * 65536 + (b or 0) * 256 + (d or 0)
    local o = {}
    for i = 1, 4 do o[i] = A:sub((n >> (6 * (4 - i)) & 63) + 1, (n >> (6 * (4 - i)) & 63) + 1) end
    if not b then o[3], o[4] = "=", "=" elseif not d then o[4] = "=" end
    return table.concat(o)
  end))
end

--- The kernel command line word for these mounts (docs/protocol.md).
function M.cmdline(list)
  local paths = {}
  for i, m in ipairs(list) do paths[i] = m.path end
  return "gondolin.mounts=" .. b64(table.concat(paths, "\n"))
end

-- -------------------------------------------------------------------------
-- The bridge to Lua providers

local Server = {}
Server.__index = Server

local function now_s()
  local s, us = uv.gettimeofday()
  return s + us / 1e6
end

local function ns(v, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return nil end
  return math.floor(v * 1e9)
end

-- What the provider failed at, once per call: EIO.
function Server:_bad(route, method, msg)
  self.log(("gondolin: vfs provider '%s' (mount %s) method %s: %s"):format(
    route.name, route.path, method, msg))
  return nil, "EIO"
end

local MUTATING = { write = true, create = true, truncate = true, mkdir = true, rmdir = true,
                   unlink = true, rename = true, symlink = true, link = true, chmod = true,
                   chown = true, utimens = true }

-- Call route.provider:method(...): value, or nil, errno name. A nil with no
-- name is returned as nil, nil (the op decides what absence means).
function Server:_invoke(route, method, ...)
  local p = route.provider
  local f = p[method]
  if f == nil then return nil, MUTATING[method] and "EROFS" or "ENOSYS" end
  if type(f) ~= "function" then return self:_bad(route, method, "is a " .. type(f) .. ", not a function") end
  local ok, r, e = budget.run(self.budget, nil, f, p, ...)
  if not ok then
    if e == true then return self:_bad(route, method, "ran out of its " .. r) end
    return self:_bad(route, method, "raised: " .. tostring(r))
  end
  if r == nil and e ~= nil then
    if type(e) ~= "string" or not ERRNOS[e] then
      return self:_bad(route, method, "returned nil, " .. tostring(e) .. " (expected an errno name like \"ENOENT\")")
    end
    return nil, e
  end
  return r
end

-- A provider attr table into the wire's, or nil, why. Missing times are
-- the route's creation (epoch 0 would make every tool show 1970).
local function wire_attr(a, path, inos, born)
  if type(a) ~= "table" then return nil, "returned a " .. type(a) .. ", expected an attribute table or nil" end
  local t = TYPES[a.type]
  if not t then return nil, ("type %s is not \"file\", \"dir\" or \"symlink\""):format(tostring(a.type)) end
  local perm = a.mode == nil and DEFAULT_PERM[a.type] or math.tointeger(a.mode)
  if not perm or perm < 0 or perm > 0xffff then return nil, "mode " .. tostring(a.mode) .. " is not permission bits" end
  local out = { mode = t | (perm & 0xfff) }
  for k, def in pairs { size = 0, nlink = a.type == "dir" and 2 or 1, uid = 0, gid = 0 } do
    local v = a[k] == nil and def or math.tointeger(a[k])
    if not v or v < 0 then return nil, k .. " " .. tostring(a[k]) .. " is not a count" end
    out[k] = v
  end
  local ino = a.ino == nil and inos(path) or math.tointeger(a.ino)
  if not ino or ino < 0 then return nil, "ino " .. tostring(a.ino) .. " is not a number" end
  out.ino = ino
  out.blocks = (out.size + 511) // 512
  local mt = ns(a.mtime, born)
  if not mt then return nil, "mtime " .. tostring(a.mtime) .. " is not seconds" end
  out.mtime = mt
  out.atime, out.ctime = ns(a.atime, mt), ns(a.ctime, mt)
  if not out.atime or not out.ctime then return nil, "atime/ctime are not seconds" end
  return out
end

function Server:_getattr(route, path, method)
  local a, err = self:_invoke(route, "getattr", path)
  if a == nil then
    if err == nil or (err == "ENOSYS" and path == "/") then
      if path == "/" and err == "ENOSYS" then a = { type = "dir" } else return nil, err or "ENOENT" end
    else
      return nil, err
    end
  end
  local w, why = wire_attr(a, path, route.inos, route.born)
  if not w then return self:_bad(route, method or "getattr", why) end
  return w
end

local function must(self, route, method, ...)
  local r, err = self:_invoke(route, method, ...)
  if r == nil and err then return nil, err end
  return true
end

local function attr_after(self, route, path, ok, err)
  if not ok then return nil, err end
  local a, aerr = self:_getattr(route, path)
  if not a then return nil, aerr end
  return { attr = a }
end

local OPS = {}

function OPS.lookup(self, route, c)
  local a, err = self:_getattr(route, c.path)
  if not a then return nil, err end
  return { attr = a }
end
OPS.getattr = OPS.lookup

function OPS.setattr(self, route, c)
  local p, ok, err = c.path, true, nil
  if c.mode then ok, err = must(self, route, "chmod", p, c.mode) end
  if ok and (c.uid or c.gid) then ok, err = must(self, route, "chown", p, c.uid, c.gid) end
  if ok and c.size then ok, err = must(self, route, "truncate", p, c.size) end
  if ok and (c.atime or c.mtime) then
    local function s(v) return v == "now" and "now" or v and v / 1e9 or nil end
    ok, err = must(self, route, "utimens", p, s(c.atime), s(c.mtime))
  end
  return attr_after(self, route, p, ok, err)
end

function OPS.readlink(self, route, c)
  local t, err = self:_invoke(route, "readlink", c.path)
  if t == nil then return nil, err or "ENOENT" end
  if type(t) ~= "string" or t == "" or #t > 4096 or t:find("\0", 1, true) then
    return self:_bad(route, "readlink", "returned " .. type(t) .. ", expected a non-empty target string")
  end
  return { target = t }
end

function OPS.symlink(self, route, c)
  return attr_after(self, route, c.path, must(self, route, "symlink", c.target, c.path))
end

function OPS.mkdir(self, route, c)
  return attr_after(self, route, c.path, must(self, route, "mkdir", c.path, c.mode))
end

function OPS.unlink(self, route, c)
  local ok, err = must(self, route, "unlink", c.path)
  if not ok then return nil, err end
  return {}
end

function OPS.rmdir(self, route, c)
  local ok, err = must(self, route, "rmdir", c.path)
  if not ok then return nil, err end
  return {}
end

function OPS.rename(self, route, c)
  if c.flags & 2 ~= 0 then return nil, "EINVAL" end   -- exchange: not offered to Lua providers
  if c.flags & 1 ~= 0 and self:_getattr(route, c.to) then return nil, "EEXIST" end
  local ok, err = must(self, route, "rename", c.path, c.to)
  if not ok then return nil, err end
  return {}
end

function OPS.link(self, route, c)
  return attr_after(self, route, c.to, must(self, route, "link", c.path, c.to))
end

local function open_handle(self, route, c, attr)
  local fh, err = self.srv:open(c)
  if not fh then return nil, err end
  return { fh = fh, attr = attr }
end

function OPS.open(self, route, c)
  local a, err = self:_getattr(route, c.path)
  if not a then return nil, err end
  local writes = c.access ~= "read"
  if writes and a.mode & S_IFMT == S_IFDIR then return nil, "EISDIR" end
  if writes and route.provider.write == nil then return nil, "EROFS" end
  if c.trunc and writes and a.size > 0 then
    local ok, terr = must(self, route, "truncate", c.path, 0)
    if not ok then return nil, terr end
  end
  return open_handle(self, route, c, a)
end

function OPS.create(self, route, c)
  local ok, err = must(self, route, "create", c.path, c.mode)
  if not ok and (err ~= "EEXIST" or c.excl) then return nil, err end
  if not ok and c.trunc then
    ok, err = must(self, route, "truncate", c.path, 0)
    if not ok then return nil, err end
  end
  local a, aerr = self:_getattr(route, c.path)
  if not a then return nil, aerr end
  return open_handle(self, route, c, a)
end

function OPS.read(self, route, c)
  local d, err = self:_invoke(route, "read", c.path, c.offset, c.size)
  if d == nil then return nil, err or "EIO" end
  if type(d) ~= "string" then
    return self:_bad(route, "read", "returned a " .. type(d) .. ", expected a string")
  end
  if #d > c.size then d = d:sub(1, c.size) end
  return { data = d }
end

function OPS.write(self, route, c)
  local off = c.offset
  if c.append then
    local a, err = self:_getattr(route, c.path)
    if not a then return nil, err end
    off = a.size
  end
  local n, err = self:_invoke(route, "write", c.path, off, c.data)
  if n == nil then return nil, err or "EIO" end
  n = math.tointeger(n)
  if not n or n < 0 or n > #c.data then
    return self:_bad(route, "write", "returned " .. tostring(n) .. ", expected a byte count 0.." .. #c.data)
  end
  return { size = n }
end

function OPS.fsync(self, route, c)
  if route.provider.fsync == nil then return {} end
  local ok, err = must(self, route, "fsync", c.path, c.datasync)
  if not ok then return nil, err end
  return {}
end

function OPS.readdir(self, route, c)
  local names, err = self:_invoke(route, "readdir", c.path)
  if names == nil then return nil, err or "ENOENT" end
  if type(names) ~= "table" then
    return self:_bad(route, "readdir", "returned a " .. type(names) .. ", expected an array of names")
  end
  local first, limit = c.offset + 1, c.offset + c.dir_skip + DIR_MAX
  local entries = {}
  for i = first, math.min(#names, limit) do
    local name = names[i]
    if type(name) ~= "string" then
      return self:_bad(route, "readdir", ("entry %d is a %s, expected a name"):format(i, type(name)))
    end
    -- an entry the provider cannot stat still takes its place, so the
    -- guest's offsets stay right
    local a = self:_getattr(route, join(c.path, name)) or
      { mode = S_IFREG, size = 0, nlink = 1, uid = 0, gid = 0, ino = route.inos(join(c.path, name)),
        blocks = 0, atime = 0, mtime = 0, ctime = 0 }
    entries[#entries + 1] = { name, a }
  end
  return { entries = entries, eof = limit >= #names }
end

function OPS.statfs(self, route, c)
  if route.provider.statfs == nil then
    return { bsize = 4096, blocks = 262144, bfree = 262144, bavail = 262144,
             files = 65536, ffree = 65536, namelen = 255 }
  end
  local st, err = self:_invoke(route, "statfs", c.path)
  if st == nil then return nil, err or "EIO" end
  if type(st) ~= "table" then return self:_bad(route, "statfs", "returned a " .. type(st) .. ", expected a table") end
  local out = {}
  for _, k in ipairs { "bsize", "blocks", "bfree", "bavail", "files", "ffree", "namelen" } do
    local v = st[k] == nil and 0 or math.tointeger(st[k])
    if not v or v < 0 then return self:_bad(route, "statfs", k .. " is not a count") end
    out[k] = v
  end
  return out
end

function OPS.access(self, route, c)
  local a, err = self:_getattr(route, c.path)
  if not a then return nil, err end
  if c.mask & 2 ~= 0 and route.provider.write == nil then return nil, "EROFS" end
  return {}
end

-- -------------------------------------------------------------------------
-- The server

-- A stable inode number per path, for providers that give none.
local function ino_table()
  local map, next_ino = {}, 1
  return function(path)
    local n = map[path]
    if not n then
      next_ino = next_ino + 1
      n = next_ino
      map[path] = n
    end
    return n
  end
end

--- Build the server for a checked mount list. opts: hooks ({before, after}),
-- log (function(msg), default stderr), budget (instructions per provider or
-- hook call: budget.lua; false for none), on_limit (function(name): a
-- per-VM bound refused a guest request).
function M.server(list, opts)
  opts = opts or {}
  local self = setmetatable({ srv = core.vfs(), routes = {}, mounts = list, hooks = opts.hooks,
                              budget = budget.check("vfs budget", opts.budget), on_limit = opts.on_limit,
                              log = opts.log or function(msg) io.stderr:write(msg, "\n") end }, Server)
  local function add(path, base, m, readonly)
    local prov
    if is_spec(base) then
      local r, err = core.realfs(base.root, base.walk)
      if not r then self.srv:close() error("gondolin: vfs.realfs " .. base.root .. ": " .. tostring(err), 3) end
      prov = r
    end
    local idx, err = self.srv:mount(path, prov, readonly)
    if not idx then self.srv:close() error("gondolin: mount " .. path .. ": " .. tostring(err), 3) end
    self.routes[idx] = { path = path, provider = not prov and base or nil, c = prov ~= nil,
                         name = prov and "realfs" or (type(base.name) == "string" and base.name or "lua table"),
                         inos = ino_table(), born = math.floor(now_s() * 1e9) }
    return idx
  end
  for _, m in ipairs(list) do
    local idx = add(m.path, m.base, m, m.readonly)
    for _, h in ipairs(m.hide) do assert(self.srv:rule(idx, "hide", h)) end
    for _, d in ipairs(m.deny) do assert(self.srv:rule(idx, "deny_write", d)) end
    for _, t in ipairs(m.tmpfs) do
      local mem = M.memory()
      mem.name = "tmpfs " .. t
      add(join(m.path, t:sub(2)), mem, m, m.readonly)
    end
  end
  if self.hooks then
    if type(self.hooks) ~= "table" then check.fail("vm option 'vfs_hooks'", "expected a table {before=, after=}") end
    check.known("vm option 'vfs_hooks'", self.hooks, { "before", "after" })
    for _, k in ipairs { "before", "after" } do
      if self.hooks[k] ~= nil and type(self.hooks[k]) ~= "function" then
        check.fail("vm option 'vfs_hooks'", k .. " must be a function")
      end
    end
    self.srv:defer_all(true)
  end
  return self
end

function Server:cmdline()
  return M.cmdline(self.mounts)
end

-- Full guest path of a routed path.
local function guest_path(c, rel)
  if rel == "/" then return c.mount_path end
  return c.mount_path == "/" and rel or c.mount_path .. rel
end

local function hook_ctx(c)
  local ctx = {}
  for k, v in pairs(c) do ctx[k] = v end
  ctx.mount, ctx.mount_path, ctx.deferred, ctx.dir_skip = c.mount_path, nil, nil, nil
  ctx.path = guest_path(c, c.path)
  if c.to then ctx.to = guest_path(c, c.to) end
  return ctx
end

--- Serve one routed call: hooks, then the provider. Returns the result
-- table or nil, errno name. May yield.
function Server:serve(c)
  local route = self.routes[c.mount]
  local hooks, ctx = self.hooks, nil
  if hooks and hooks.before then
    ctx = hook_ctx(c)
    local ok, verdict, exhausted = budget.run(self.budget, nil, hooks.before, c.op, ctx)
    if not ok then
      self.log("gondolin: vfs_hooks.before " .. (exhausted and "ran out of its " or "raised: ") .. tostring(verdict))
      return nil, "EIO"
    end
    if verdict == false then return nil, "EACCES" end
    if type(verdict) == "string" then return nil, ERRNOS[verdict] and verdict or "EACCES" end
  end
  local r, err
  if route.c then
    r, err = self.srv:call(c)
    if r and c.op == "readdir" then c.dir_skip = 0 end   -- applied in C already
  else
    r, err = OPS[c.op](self, route, c)
  end
  if hooks and hooks.after then
    local ok, herr, exhausted = budget.run(self.budget, nil, hooks.after, c.op, ctx or hook_ctx(c), r or { err = err })
    if not ok then
      self.log("gondolin: vfs_hooks.after " .. (exhausted and "ran out of its " or "raised: ") .. tostring(herr))
    end
  end
  return r, err
end

--- One FS request frame; send(type, id, payload) sends the reply.
function Server:frame(t, id, payload, send)
  local reply, c, limit = self.srv:frame(t, payload)
  if reply then
    if limit and self.on_limit then self.on_limit(limit) end
    return send(FS_REPLY, id, reply)
  end
  sched.spawn(function()
    local ok, r, err = pcall(self.serve, self, c)
    if not ok then
      self.log("gondolin: vfs: " .. tostring(r))
      r, err = nil, "EIO"
    end
    local out, good
    if r then
      out, good = self.srv:reply(c, r)
      if not good then self:_bad(self.routes[c.mount], c.op, "the result has the wrong shape") end
    else
      out = self.srv:fail(c, err)
    end
    if self.srv then send(FS_REPLY, id, out) end
  end)
end

--- A host-side request on a guest path: result or nil, errno name; nil,
-- "EINVAL" when no mount holds the path.
function Server:request(op, path, fields)
  local q = { op = op, path = path }
  for k, v in pairs(fields or {}) do q[k] = v end
  local c, err = self.srv:route(q)
  if not c then return nil, err end
  if c.op == "release" then
    self.srv:release(c.fh)
    return {}
  end
  return self:serve(c)
end

--- Is the guest path under a mount?
function Server:covers(path)
  local c, err = self.srv:route { op = "getattr", path = path }
  return c ~= nil or err ~= "EINVAL"
end

function Server:stats() return self.srv:stats() end

function Server:close()
  if self.srv then self.srv:close() self.srv = nil end
end
Server.__close = Server.close

return M

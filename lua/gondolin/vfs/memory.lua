-- vfs/memory.lua - the in-memory provider: a file tree that lives in Lua
-- tables and vanishes with the VM, for scratch mounts the guest may fill.
--
-- Theory of Operation
--
-- The provider is a plain table of methods (p:getattr(path), p:write(...))
-- over one tree of nodes. A node is a file, a directory or a symlink, with
-- its own ino; a directory maps names to nodes, so a hard link is the same
-- node under two names and nlink counts them. Paths come normalised from
-- the server; they are walked from the root and never through a symlink
-- (the guest's kernel resolves links itself, and a target names the guest's
-- tree, not ours), so a symlink in the middle of a path is ENOTDIR.
--
-- File data is an array of BLOCK-byte strings, so a write rebuilds only
-- the blocks it touches and a read joins only the blocks it needs. A block
-- may be shorter than BLOCK or absent: the bytes it lacks, up to the file's
-- size, are zeros. Sparse files and gaps thus cost nothing, and truncating
-- cuts the last block so that growing again reads zeros.
--
-- Limits, because the guest fills this tree with host memory: max_bytes
-- bounds the file sizes (each node counted once) plus the symlink targets,
-- and max_nodes bounds the names in the tree (files, directories, symlinks
-- and hard links: each name costs memory); past either, ENOSPC. Names are
-- at most NAME_MAX bytes, paths and targets PATH_MAX - 1, a node's links
-- LINK_MAX. Reads do not update atime (as a noatime mount).
local uv = require "luv"

local M = {}

local BLOCK = 64 * 1024
local ZERO = ("\0"):rep(BLOCK)
local NAME_MAX = 255
local PATH_MAX = 4096
local LINK_MAX = 65000
local DEFAULTS = { max_bytes = 1024 * 1024 * 1024, max_nodes = 100000 }
local WHAT = "gondolin.vfs.memory"

local P = {}

local function now()
  local s, us = uv.gettimeofday()
  return s + (us or 0) / 1e6
end

--- A non-negative integer from v, or nil (a float with no fraction counts).
local function uint(v)
  local n = math.type(v) and math.tointeger(v)
  if n and n >= 0 then return n end
  return nil
end

local function new_node(self, kind, mode)
  local t = now()
  local ino = self._next_ino
  self._next_ino = ino + 1
  local node = { kind = kind, mode = mode & 0xfff, uid = 0, gid = 0, ino = ino,
                 nlink = 0, atime = t, mtime = t, ctime = t }
  if kind == "dir" then
    node.entries, node.count, node.subdirs = {}, 0, 0
  elseif kind == "file" then
    node.blocks, node.size = {}, 0
  end
  return node
end

--- Raise unless path is an absolute string: the server hands us no other.
--- level: how many calls above check_path the method's caller sits.
local function check_path(path, level)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
    error(WHAT .. ": path must be an absolute string, got " .. tostring(path), level + 1)
  end
end

--- The node at path, or nil, err: ENOENT, ENOTDIR (a component that is not
--- a directory) or ENAMETOOLONG.
local function lookup(self, path)
  check_path(path, 3)
  if #path >= PATH_MAX then return nil, "ENAMETOOLONG" end
  local node = self._root
  for name in path:gmatch "[^/]+" do
    if #name > NAME_MAX then return nil, "ENAMETOOLONG" end
    if node.kind ~= "dir" then return nil, "ENOTDIR" end
    node = node.entries[name]
    if not node then return nil, "ENOENT" end
  end
  return node
end

--- The directory holding path's last name, and that name; nil, err when
--- the parent is missing or not a directory, nil, nil for "/".
local function lookup_parent(self, path)
  check_path(path, 3)
  local dir, name = path:match "^(.*)/([^/]+)$"
  if not dir then return nil, nil end
  if #name > NAME_MAX or #path >= PATH_MAX then return nil, "ENAMETOOLONG" end
  local parent, err = lookup(self, dir == "" and "/" or dir)
  if not parent then return nil, err end
  if parent.kind ~= "dir" then return nil, "ENOTDIR" end
  return parent, name
end

local function touch(node, t)
  t = t or now()
  node.mtime, node.ctime = t, t
end

--- Put node under parent[name] (free), keeping the counts.
local function attach(parent, name, node)
  parent.entries[name] = node
  parent.count = parent.count + 1
  if node.kind == "dir" then parent.subdirs = parent.subdirs + 1 end
  node.nlink = node.nlink + 1
  touch(parent)
end

--- Take parent[name] away; a node left with no name gives back its bytes.
local function detach(self, parent, name)
  local node = parent.entries[name]
  parent.entries[name] = nil
  parent.count = parent.count - 1
  if node.kind == "dir" then parent.subdirs = parent.subdirs - 1 end
  node.nlink = node.nlink - 1
  self._names = self._names - 1
  if node.nlink == 0 then
    if node.kind == "file" then
      self._bytes = self._bytes - node.size
      node.blocks = {}
    elseif node.kind == "symlink" then
      self._bytes = self._bytes - #node.target
    end
  end
  local t = now()
  touch(parent, t)
  node.ctime = t
  return node
end

--- Make a new node named path; nil, err as creat/mkdir/symlink would.
local function make(self, path, kind, mode, extra_bytes)
  local parent, name = lookup_parent(self, path)
  if not parent then return nil, name or "EEXIST" end
  if parent.entries[name] then return nil, "EEXIST" end
  if self._names >= self._max_nodes then return nil, "ENOSPC" end
  if self._bytes + extra_bytes > self._max_bytes then return nil, "ENOSPC" end
  local node = new_node(self, kind, mode)
  self._names = self._names + 1
  self._bytes = self._bytes + extra_bytes
  attach(parent, name, node)
  return node
end

--- The file at path, or nil, err (EISDIR for a directory, EINVAL else).
local function file_at(self, path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  if node.kind == "dir" then return nil, "EISDIR" end
  if node.kind ~= "file" then return nil, "EINVAL" end
  return node
end

function P:getattr(path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  local size, nlink = 0, node.nlink
  if node.kind == "file" then
    size = node.size
  elseif node.kind == "symlink" then
    size = #node.target
  else
    size, nlink = node.count, 2 + node.subdirs
  end
  return { type = node.kind, size = size, mode = node.mode, nlink = nlink,
           uid = node.uid, gid = node.gid, ino = node.ino,
           atime = node.atime, mtime = node.mtime, ctime = node.ctime }
end

function P:readdir(path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  if node.kind ~= "dir" then return nil, "ENOTDIR" end
  local names = {}
  for name in pairs(node.entries) do names[#names + 1] = name end
  table.sort(names)
  return names
end

--- Up to length bytes from offset; "" at or past the end.
function P:read(path, offset, length)
  local node, err = file_at(self, path)
  if not node then return nil, err end
  offset, length = uint(offset), uint(length)
  if not offset or not length then return nil, "EINVAL" end
  if offset >= node.size then return "" end
  local stop = offset + math.min(length, node.size - offset)   -- exclusive
  local parts, off = {}, offset
  while off < stop do
    local lo = off % BLOCK
    local take = math.min(BLOCK - lo, stop - off)
    local piece = (node.blocks[off // BLOCK + 1] or ""):sub(lo + 1, lo + take)
    if #piece < take then piece = piece .. ZERO:sub(1, take - #piece) end
    parts[#parts + 1] = piece
    off = off + take
  end
  return table.concat(parts)
end

--- Put data at offset, rebuilding only the blocks it touches.
local function put(node, offset, data)
  local pos, off, n = 1, offset, #data
  while pos <= n do
    local bi, lo = off // BLOCK + 1, off % BLOCK
    local take = math.min(BLOCK - lo, n - pos + 1)
    local old = node.blocks[bi] or ""
    local head = #old >= lo and old:sub(1, lo) or old .. ZERO:sub(1, lo - #old)
    node.blocks[bi] = head .. data:sub(pos, pos + take - 1) .. old:sub(lo + take + 1)
    pos, off = pos + take, off + take
  end
end

function P:write(path, offset, data)
  local node, err = file_at(self, path)
  if not node then return nil, err end
  offset = uint(offset)
  if not offset or type(data) ~= "string" then return nil, "EINVAL" end
  if #data == 0 then return 0 end
  if offset > self._max_bytes then return nil, "ENOSPC" end   -- no overflow below
  local size = math.max(node.size, offset + #data)
  if self._bytes + size - node.size > self._max_bytes then return nil, "ENOSPC" end
  put(node, offset, data)
  self._bytes = self._bytes + size - node.size
  node.size = size
  touch(node)
  return #data
end

function P:create(path, mode)
  mode = mode == nil and 0x1a4 or uint(mode)
  if not mode then return nil, "EINVAL" end
  local node, err = make(self, path, "file", mode, 0)
  if not node then return nil, err end
  return true
end

function P:truncate(path, size)
  local node, err = file_at(self, path)
  if not node then return nil, err end
  size = uint(size)
  if not size then return nil, "EINVAL" end
  if size > self._max_bytes or self._bytes + size - node.size > self._max_bytes then
    return nil, "ENOSPC"
  end
  if size < node.size then
    local last = (size + BLOCK - 1) // BLOCK   -- blocks that stay
    for i = last + 1, (node.size + BLOCK - 1) // BLOCK do node.blocks[i] = nil end
    local b = node.blocks[last]
    local keep = size - (last - 1) * BLOCK
    if b and #b > keep then node.blocks[last] = b:sub(1, keep) end
  end
  self._bytes = self._bytes + size - node.size
  node.size = size
  touch(node)
  return true
end

function P:mkdir(path, mode)
  mode = mode == nil and 0x1ed or uint(mode)
  if not mode then return nil, "EINVAL" end
  local node, err = make(self, path, "dir", mode, 0)
  if not node then return nil, err end
  return true
end

function P:rmdir(path)
  local parent, name = lookup_parent(self, path)
  if not parent then return nil, name or "EINVAL" end   -- "/" stays
  local node = parent.entries[name]
  if not node then return nil, "ENOENT" end
  if node.kind ~= "dir" then return nil, "ENOTDIR" end
  if node.count > 0 then return nil, "ENOTEMPTY" end
  detach(self, parent, name)
  return true
end

function P:unlink(path)
  local parent, name = lookup_parent(self, path)
  if not parent then return nil, name or "EISDIR" end
  local node = parent.entries[name]
  if not node then return nil, "ENOENT" end
  if node.kind == "dir" then return nil, "EISDIR" end
  detach(self, parent, name)
  return true
end

--- Whether rename may put node in the place of old: true, or nil, err.
local function replaceable(node, old)
  if node.kind == "dir" then
    if old.kind ~= "dir" then return nil, "ENOTDIR" end
    if old.count > 0 then return nil, "ENOTEMPTY" end
  elseif old.kind == "dir" then
    return nil, "EISDIR"
  end
  return true
end

function P:rename(from, to)
  check_path(from, 2)
  check_path(to, 2)
  local sparent, sname = lookup_parent(self, from)
  if not sparent then return nil, sname or "EINVAL" end
  local node = sparent.entries[sname]
  if not node then return nil, "ENOENT" end
  local dparent, dname = lookup_parent(self, to)
  if not dparent then return nil, dname or "EINVAL" end
  local old = dparent.entries[dname]
  if old == node then return true end   -- itself, or another link to it
  if node.kind == "dir" and to:sub(1, #from + 1) == from .. "/" then return nil, "EINVAL" end
  if old then
    local ok, err = replaceable(node, old)
    if not ok then return nil, err end
    detach(self, dparent, dname)
  end
  sparent.entries[sname] = nil   -- a move: the name count stays
  sparent.count = sparent.count - 1
  if node.kind == "dir" then sparent.subdirs = sparent.subdirs - 1 end
  node.nlink = node.nlink - 1
  touch(sparent)
  attach(dparent, dname, node)
  node.ctime = dparent.ctime
  return true
end

function P:symlink(target, path)
  if type(target) ~= "string" or target == "" then return nil, "EINVAL" end
  if #target >= PATH_MAX then return nil, "ENAMETOOLONG" end
  local node, err = make(self, path, "symlink", 0x1ff, #target)
  if not node then return nil, err end
  node.target = target
  return true
end

function P:readlink(path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  if node.kind ~= "symlink" then return nil, "EINVAL" end
  return node.target
end

function P:link(from, to)
  check_path(from, 2)
  check_path(to, 2)
  local node, err = lookup(self, from)
  if not node then return nil, err end
  local parent, name = lookup_parent(self, to)
  if not parent then return nil, name or "EEXIST" end
  if node.kind == "dir" then return nil, "EPERM" end
  if parent.entries[name] then return nil, "EEXIST" end
  if node.nlink >= LINK_MAX then return nil, "EMLINK" end
  if self._names >= self._max_nodes then return nil, "ENOSPC" end
  self._names = self._names + 1
  attach(parent, name, node)
  node.ctime = parent.ctime
  return true
end

function P:chmod(path, mode)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  mode = uint(mode)
  if not mode then return nil, "EINVAL" end
  node.mode = mode & 0xfff
  node.ctime = now()
  return true
end

function P:chown(path, uid, gid)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  local u, g = uid == nil or uint(uid), gid == nil or uint(gid)
  if not u or not g then return nil, "EINVAL" end
  if uid ~= nil then node.uid = u end
  if gid ~= nil then node.gid = g end
  node.ctime = now()
  return true
end

--- A time for utimens: seconds, "now" or nil (unchanged); false if bad.
local function when(v, t)
  if v == nil then return nil end
  if v == "now" then return t end
  if type(v) == "number" and v == v and v > -math.huge and v < math.huge then return v end
  return false
end

function P:utimens(path, atime, mtime)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  local t = now()
  local a, m = when(atime, t), when(mtime, t)
  if a == false or m == false then return nil, "EINVAL" end
  node.atime = a or node.atime
  node.mtime = m or node.mtime
  node.ctime = t
  return true
end

function P:statfs(path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  local free = (self._max_bytes - self._bytes) // 4096
  return { bsize = 4096, blocks = (self._max_bytes + 4095) // 4096, bfree = free, bavail = free,
           files = self._max_nodes, ffree = self._max_nodes - self._names, namelen = NAME_MAX }
end

function P:fsync(path)
  local node, err = lookup(self, path)
  if not node then return nil, err end
  return true
end

local function bad(msg)
  error(WHAT .. ": " .. msg, 4)
end

--- The options with defaults filled in; raises naming a bad one.
local function options(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then bad("options must be a table, got " .. type(opts)) end
  for k in pairs(opts) do
    if DEFAULTS[k] == nil then
      bad(("unknown option '%s' (accepted: max_bytes, max_nodes)"):format(tostring(k)))
    end
  end
  local o = {}
  for k, default in pairs(DEFAULTS) do
    local v = opts[k]
    if v == nil then
      o[k] = default
    else
      local n = math.type(v) and math.tointeger(v)
      if not n or n <= 0 then
        bad(("option '%s' must be a positive integer, got %s"):format(k, tostring(v)))
      end
      o[k] = n
    end
  end
  return o
end

--- A new, empty provider: a table of methods over its own tree.
function M.new(opts)
  local o = options(opts)
  local p = { name = "memory", __name = "memory", _next_ino = 1, _names = 0, _bytes = 0,
              _max_bytes = o.max_bytes, _max_nodes = o.max_nodes }
  for k, f in pairs(P) do p[k] = f end
  p._root = new_node(p, "dir", 0x1ed)
  p._root.nlink = 1
  return p
end

return M

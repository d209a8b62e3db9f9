-- SPDX-License-Identifier: MIT
-- mkinitramfs.lua - write the gondolin initramfs as a reproducible newc cpio archive
--
-- As a script:
--   lua5.4 guest/image/mkinitramfs.lua OUT.cpio --agent PATH [--init PATH]
--          [--floor PATH] [--busybox PATH] [--extra SRC:DEST ...]
-- As a module (plain Lua 5.4, no external modules):
--   local mk = require "mkinitramfs"   -- or however it is placed on package.path
--   local ok, err = mk.build("out.cpio", { agent = ..., init = ..., floor = ...,
--                                          busybox = ..., extra = { { "src", "/dest" } } })
--
-- The archive is uncompressed. Every entry has uid/gid 0 and mtime 0, inode
-- numbers follow the sorted order of the paths, and device nodes are written
-- as entries (no root, no mknod), so the same inputs always give the same bytes.
-- The file is written to OUT.tmp and renamed into place.

local M = {}

local S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0x4000, 0x8000, 0xA000, 0x2000

-- Directories of every image, with their permissions.
local DIRS = {
  ["."] = 493, bin = 493, sbin = 493, usr = 493, ["usr/bin"] = 493,
  ["usr/sbin"] = 493, dev = 493, proc = 493, sys = 493, tmp = 1023,
  run = 493, root = 448, etc = 493,
}

local PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
local GROUP = "root:x:0:\ntty:x:5:\n"

--- Pad length n up to a multiple of 4 with NUL bytes.
local function pad4(n)
  return string.rep("\0", (4 - n % 4) % 4)
end

--- Encode one newc entry: header, name, padding, data, padding.
-- e = { name = "bin/sh", mode = number, data = string?, rmajor = n?, rminor = n?, nlink = n? }
function M.cpio_entry(ino, e)
  local data = e.data or ""
  local hdr = string.format("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
    ino, e.mode, 0, 0, e.nlink or 1, 0, #data, 0, 0,
    e.rmajor or 0, e.rminor or 0, #e.name + 1, 0)
  local head = hdr .. e.name .. "\0"
  return head .. pad4(#head) .. data .. pad4(#data)
end

--- Encode a whole archive: entries sorted by name, inodes 1.., then the trailer.
function M.cpio(entries)
  table.sort(entries, function(a, b) return a.name < b.name end)
  local out = {}
  for i, e in ipairs(entries) do out[i] = M.cpio_entry(i, e) end
  out[#out + 1] = M.cpio_entry(0, { name = "TRAILER!!!", mode = 0, nlink = 1 })
  return table.concat(out)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("a")
  f:close()
  return data
end

-- Executable on the host? (no lfs: ask the shell's test, quoted safely)
local function is_executable(path)
  local q = "'" .. path:gsub("'", "'\\''") .. "'"
  return os.execute("test -x " .. q) == true
end

-- Normalise "/a/b/" to "a/b"; reject empty names and "..".
local function clean(dest)
  local p = dest:gsub("^/+", ""):gsub("/+$", ""):gsub("//+", "/")
  if p == "" then return nil end
  for part in p:gmatch("[^/]+") do
    if part == ".." or part == "." then return nil end
  end
  return p
end

--- Collect the entries of an image from opts; returns list or nil, err.
--- Applet paths ("bin/ls", "usr/bin/awk", ...) from busybox itself, sorted.
local function applets(busybox)
  local p = io.popen("'" .. busybox:gsub("'", "'\\''") .. "' --list-full 2>/dev/null")
  local list = {}
  if p then
    for line in p:lines() do
      if line:match("^[%w/%.%[%-_]+$") and not line:find("..", 1, true) then list[#list + 1] = line end
    end
    p:close()
  end
  table.sort(list)
  return list
end

local function entries_for(opts)
  local list, seen = {}, {}
  local function add(e)
    if seen[e.name] then
      if e.mode & 0xF000 == S_IFDIR and seen[e.name].mode & 0xF000 == S_IFDIR then return end
      return error("duplicate path in image: /" .. e.name, 0)
    end
    seen[e.name] = e
    list[#list + 1] = e
  end
  local function add_parents(name)
    local dir = name:match("^(.*)/[^/]+$")
    if dir then
      add_parents(dir)
      if not seen[dir] then add { name = dir, mode = S_IFDIR | 493, nlink = 2 } end
    end
  end
  local function add_file(src, dest, mode)
    local data, err = read_file(src)
    if not data then error(err, 0) end
    add_parents(dest)
    add { name = dest, mode = S_IFREG | mode, data = data }
  end

  for name, perm in pairs(DIRS) do add { name = name, mode = S_IFDIR | perm, nlink = 2 } end
  add { name = "dev/console", mode = S_IFCHR | 384, rmajor = 5, rminor = 1 }
  add { name = "dev/null", mode = S_IFCHR | 438, rmajor = 1, rminor = 3 }
  add { name = "etc/passwd", mode = S_IFREG | 420, data = PASSWD }
  add { name = "etc/group", mode = S_IFREG | 420, data = GROUP }
  if not opts.agent then error("missing option: agent", 0) end
  if opts.busybox then   -- without it (root-disk images) the agent is all there is
    add { name = "bin/sh", mode = S_IFLNK | 511, data = "busybox" }
    add_file(opts.busybox, "bin/busybox", 493)
    -- applet links made now, so nothing runs `busybox --install` at boot
    for _, path in ipairs(applets(opts.busybox)) do
      if not seen[path] then
        add_parents(path)
        add { name = path, mode = S_IFLNK | 511, data = "/bin/busybox" }
      end
    end
  end
  if opts.init then
    add_file(opts.init, "init", 493)
  else
    -- the agent sets the system up itself when it is PID 1 (sysinit.c)
    add { name = "init", mode = S_IFLNK | 511, data = "sbin/gondolin-agent" }
  end
  add_file(opts.agent, "sbin/gondolin-agent", 493)
  if opts.floor then add_file(opts.floor, "floor", 493) end
  for _, x in ipairs(opts.extra or {}) do
    local dest = clean(x[2] or "")
    if not dest then error("bad --extra destination: " .. tostring(x[2]), 0) end
    add_file(x[1], dest, is_executable(x[1]) and 493 or 420)
  end
  return list
end

--- Build the image at path out. Returns true, or nil and an error message.
function M.build(out, opts)
  local ok, list = pcall(entries_for, opts)
  if not ok then return nil, tostring(list) end
  local tmp = out .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local wok, werr = f:write(M.cpio(list))
  local cok, cerr = f:close()
  if not wok or not cok then
    os.remove(tmp)
    return nil, werr or cerr
  end
  local rok, rerr = os.rename(tmp, out)
  if not rok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- Parse the command line; returns out, opts or nil, usage message.
local function parse_args(argv)
  local usage = "usage: mkinitramfs.lua OUT.cpio --agent PATH [--init PATH] [--floor PATH]"
    .. " [--busybox PATH] [--extra SRC:DEST ...]"
  local out, opts, i = nil, { extra = {} }, 1
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if a == "--extra" and v then
      local src, dest = v:match("^(.-):(/?[^:]+)$")
      if not src or src == "" then return nil, "bad --extra " .. v .. "\n" .. usage end
      opts.extra[#opts.extra + 1] = { src, dest }
      i = i + 2
    elseif a:match("^%-%-") and v and ({ ["--agent"] = 1, ["--init"] = 1,
        ["--floor"] = 1, ["--busybox"] = 1 })[a] then
      opts[a:sub(3)] = v
      i = i + 2
    elseif not out and not a:match("^%-") then
      out = a
      i = i + 1
    else
      return nil, usage
    end
  end
  if not (out and opts.agent) then
    return nil, usage
  end
  return out, opts
end

-- Required as a module: the caller of this chunk is require(), so a
-- level-4 frame exists; run as a script by lua5.4 it does not.
if pcall(debug.getlocal, 4, 1) then
  return M
end

local out, opts = parse_args(arg)
if not out then
  io.stderr:write(opts, "\n")
  os.exit(2)
end
local ok, err = M.build(out, opts)
if not ok then
  io.stderr:write("mkinitramfs: ", err, "\n")
  os.exit(1)
end

-- disk.lua - one VM's root disk: its mode, its overlay, its QEMU arguments.
--
-- The image's rootfs.ext4 (raw) is never written. Above it may sit the
-- qcow2 layers of a checkpoint (read-only), and above those, per mode:
--   cow       a fresh qcow2 overlay in the scratch dir, removed on close
--   memory    QEMU's snapshot=on (its own temporary overlay); with
--             disk_size, a sized qcow2 overlay under the snapshot
--   readonly  nothing: the device is read-only, the guest mounts it ro
-- The whole chain is spelled out as a JSON block-device tree on the QEMU
-- command line, so QEMU never follows backing-file names stored in qcow2
-- headers (a moved cache directory cannot make it open the wrong file).
-- With o.inherit (qemu.inherit), every file in the tree is opened here,
-- read-only except the cow overlay, and QEMU gets the descriptor
-- (/dev/fdset/N) instead of a name: a QEMU running as another user never
-- needs access to our directories, and cannot write a read-only layer.
-- memory mode's temporary overlay goes to a fresh scratch directory
-- (TMPDIR for QEMU, owned by o.owner, inherited like the files), removed
-- on close.
local uv = require "luv"
local lpeg = require "lpeg"
local json = require "gondolin.json"
local files = require "gondolin.files"
local check = require "gondolin.check"
local command = require "gondolin.command"

local M = {}

M.MODES = { "cow", "memory", "readonly" }

local MiB = 1024 * 1024
local MIN_SIZE, MAX_SIZE = 64 * MiB, 16 * 1024 * 1024 * MiB

-- "8G", "8GiB", "512M", "1T", "1.5G": bytes
local digits = lpeg.R "09" ^ 1 * ("." * lpeg.R "09" ^ 1) ^ -1 / tonumber
local function unit(letters, mul)
  return lpeg.S(letters) * (lpeg.P "iB" + lpeg.P "B") ^ -1 * lpeg.Cc(mul)
end
local size_pat = digits * (unit("kK", 1024) + unit("mM", MiB) + unit("gG", 1024 * MiB)
  + unit("tT", 1024 * 1024 * MiB)) * -1

--- Parse a disk size: a string with a K/M/G/T suffix or a number of MiB.
-- Returns bytes (a multiple of 1 MiB); raises naming the option otherwise.
function M.parse_size(what, v)
  local bytes
  if type(v) == "number" then
    bytes = v * MiB
  elseif type(v) == "string" then
    local n, mul = size_pat:match(v)
    bytes = n and n * mul
  end
  if not bytes or bytes < MIN_SIZE or bytes > MAX_SIZE then
    check.fail(what, ("'%s' is not a disk size (accepted: \"8G\", \"512M\", \"1T\", or MiB as a number; 64M..16T)")
      :format(tostring(v)), 2)
  end
  return math.tointeger(math.ceil(bytes / MiB) * MiB)
end

--- "1.4 GiB" for a byte count.
function M.human(bytes)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while bytes >= 1024 and i < #units do bytes = bytes / 1024 i = i + 1 end
  return i == 1 and ("%d B"):format(bytes) or ("%.1f %s"):format(bytes, units[i])
end

--- Virtual size of a disk file: a raw file's length, or a qcow2 header's
-- size field. Returns bytes or nil, err.
function M.virtual_size(path)
  local head, err = files.read(path, 32)
  if not head then return nil, err end
  if head:sub(1, 4) == "QFI\xfb" then
    if #head < 32 then return nil, path .. ": truncated qcow2 header" end
    return string.unpack(">I8", head, 25)
  end
  return files.size(path)
end

-- The name QEMU opens a disk file by: the path, or an inherited
-- descriptor's fdset. Returns a file node or nil, err.
local function file_node(path, mode, inherit)
  if not inherit then return { driver = "file", filename = path } end
  local name, err = inherit:fdset(path, mode)
  if not name then return nil, err end
  return { driver = "file", filename = name }
end

-- The read-only part of the chain: the raw base, then each checkpoint layer.
local function chain_node(base, layers, inherit)
  local file, err = file_node(base, "r", inherit)
  if not file then return nil, err end
  local node = { driver = "raw", ["read-only"] = true, file = file }
  for _, layer in ipairs(layers or {}) do
    file, err = file_node(layer, "r", inherit)
    if not file then return nil, err end
    node = { driver = "qcow2", ["read-only"] = true, file = file, backing = node }
  end
  return node
end

-- memory mode: a fresh directory for QEMU's temporary overlay, owned by
-- owner ({ uid, gid }) when QEMU runs as another user. Returns the path or nil, err.
local function snapshot_dir(owner)
  local dir = files.scratch("qemu-tmp")
  local ok, err = uv.fs_mkdir(dir, tonumber("700", 8))
  if ok and owner then ok, err = uv.fs_chown(dir, owner.uid, owner.gid) end
  if not ok then
    files.rm_tree(dir)
    return nil, "gondolin: cannot create QEMU's temporary directory " .. dir .. ": " .. tostring(err)
  end
  return dir
end

-- qemu-img create of a qcow2 over `backing` (format fmt), `size` bytes.
local function create_overlay(path, backing, fmt, size)
  local _, err = command.check { "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", fmt,
                                 "-b", backing, path, tostring(size) }
  if err then return nil, "gondolin: cannot create the root disk overlay: " .. err end
  return true
end

-- The files and QEMU arguments of disk (M.open); returns true or nil, err.
local function build(disk, img, o, top, have)
  local mode, size = o.mode, o.size
  local node, nerr = chain_node(img.rootfs, img.layers, o.inherit)
  if not node then return nil, nerr end
  if mode == "cow" or size then
    disk.overlay = files.scratch("overlay", ".qcow2")
    local fmt = img.layers and #img.layers > 0 and "qcow2" or "raw"
    local ok, err = create_overlay(disk.overlay, top, fmt, size or have)
    if not ok then return nil, err end
    disk.cleanup = files.on_exit(function() os.remove(disk.overlay) end)
    -- under the snapshot (memory) the overlay is read-only: the snapshot takes the writes
    local file, ferr = file_node(disk.overlay, mode == "memory" and "r" or "rw", o.inherit)
    if not file then return nil, ferr end
    node = { driver = "qcow2", file = file, backing = node }
    if mode == "memory" then node["read-only"] = true end
  end
  if mode == "memory" then
    local dir, derr = snapshot_dir(o.owner)
    if not dir then return nil, derr end
    disk.tmpdir, disk.qemu_tmpdir = dir, dir
    disk.tmp_cleanup = files.on_exit(function() files.rm_tree(dir) end)
    if o.inherit then   -- reached through its descriptor: the path may cross our private directories
      local name, ierr = o.inherit:path(dir)
      if not name then return nil, ierr end
      disk.qemu_tmpdir = name
    end
    -- snapshot=on exists only for -drive; its file= takes the same tree
    disk.args = { "-drive", "if=none,id=root,snapshot=on,file=json:" .. json.encode(node):gsub(",", ",,") }
  else
    node["node-name"] = "root"
    disk.args = { "-blockdev", json.encode(node) }
  end
  disk.args[#disk.args + 1] = "-device"
  disk.args[#disk.args + 1] = "virtio-blk-device,drive=root"
  if mode == "readonly" then disk.cmdline = disk.cmdline .. ",ro" end
  if size and size > have then disk.cmdline = disk.cmdline .. ",grow" end
  return true
end

--- Set up the root disk of one boot. img: { rootfs = path, layers = {qcow2
-- paths, bottom first}? }; o: { mode, size = bytes?, inherit = qemu.inherit()?,
-- owner = { uid, gid }? }. Returns a disk { mode, args, cmdline, overlay?,
-- tmpdir?, qemu_tmpdir? (QEMU's TMPDIR) } or nil, err (then nothing is
-- left behind).
function M.open(img, o)
  local mode, size = o.mode, o.size
  local top = img.layers and img.layers[#img.layers] or img.rootfs
  local have, serr = M.virtual_size(top)
  if not have then return nil, "gondolin: root disk: " .. tostring(serr) end
  if size and size < have then
    return nil, ("gondolin: vm option 'disk_size': %s is smaller than the image's root disk (%s); accepted: %s or more")
      :format(M.human(size), M.human(have), M.human(have))
  end
  if size and mode == "readonly" then
    return nil, "gondolin: vm option 'disk_size' needs a writable root disk (rootfs = \"cow\" or \"memory\")"
  end
  local disk = { mode = mode, cmdline = "gondolin.root=vda" }
  local ok, err = build(disk, img, o, top, have)
  if not ok then
    M.close(disk)   -- the overlay or temporary directory made so far
    return nil, err
  end
  return disk
end

--- Remove the overlay (cow) and QEMU's temporary directory (memory); a
-- second call does nothing.
function M.close(disk)
  if disk and disk.overlay and not disk.kept then
    os.remove(disk.overlay)
    files.cancel(disk.cleanup)
    disk.overlay = nil
  end
  if disk and disk.tmpdir then
    files.rm_tree(disk.tmpdir)
    files.cancel(disk.tmp_cleanup)
    disk.tmpdir = nil
  end
end

return M

-- checkpoint.lua - disk checkpoints: a stopped VM's root disk overlay, kept
-- as one qcow2 file that new VMs start from, any number of times.
--
-- The file is the overlay itself with gondolin's metadata appended (QEMU
-- ignores bytes past the qcow2 data, and a checkpoint is only ever opened
-- read-only):
--
--   [ qcow2 ][ JSON metadata ][ "GNDCKPT1" ][ JSON length, u32 BE ]
--
-- The metadata names the image build the overlay sits on. A resumed VM
-- gets a fresh overlay above the checkpoint, the checkpoint above the
-- image's rootfs.ext4; checkpointing a resumed VM first folds the older
-- checkpoint's data into the new overlay (qemu-img rebase), so every
-- checkpoint sits directly on its image and stands alone.
local uv = require "luv"
local json = require "gondolin.json"
local files = require "gondolin.files"
local command = require "gondolin.command"

local M = {}

M.MAGIC = "GNDCKPT1"
M.FORMAT = 1
local TRAILER = #M.MAGIC + 4
local MAX_META = 64 * 1024

local Checkpoint = {}
Checkpoint.__index = Checkpoint

--- The trailer bytes for a metadata table.
function M.encode_trailer(meta)
  local body = json.encode(meta)
  return body .. M.MAGIC .. string.pack(">I4", #body)
end

--- Decode a file's last bytes (tail: at least the trailer) into metadata.
-- Returns meta, the offset where the trailer starts in tail, or nil, err.
function M.decode_trailer(tail)
  if #tail < TRAILER then return nil, "too short to hold a checkpoint trailer" end
  if tail:sub(-TRAILER, -5) ~= M.MAGIC then return nil, "no gondolin checkpoint trailer (not a checkpoint)" end
  local len = string.unpack(">I4", tail, #tail - 3)
  if len == 0 or len > MAX_META or len > #tail - TRAILER then return nil, "checkpoint trailer length out of range" end
  local start = #tail - TRAILER - len + 1
  local meta, err = json.decode(tail:sub(start, #tail - TRAILER))
  if type(meta) ~= "table" then return nil, "checkpoint metadata: " .. tostring(err or "not an object") end
  if meta.format ~= M.FORMAT then
    return nil, ("checkpoint metadata format %s (accepted: %d)"):format(tostring(meta.format), M.FORMAT)
  end
  if meta.kind ~= "disk" then return nil, "checkpoint kind " .. tostring(meta.kind) .. " (accepted: disk)" end
  for _, k in ipairs { "build_id", "name", "created", "image" } do
    if type(meta[k]) ~= "string" or meta[k] == "" then return nil, "checkpoint metadata lacks " .. k end
  end
  if not meta.build_id:match("^%x+$") then return nil, "checkpoint metadata: malformed build_id" end
  if math.type(meta.disk_bytes) ~= "integer" or meta.disk_bytes <= 0 then
    return nil, "checkpoint metadata: malformed disk_bytes"
  end
  return meta, start
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return uv.cwd() .. "/" .. path
end

--- Read a checkpoint's metadata. Returns a checkpoint or nil, err.
function M.load(path)
  if type(path) ~= "string" then error("gondolin: checkpoint.load: expected a path, got " .. type(path), 2) end
  path = absolute(path)
  local fd, err = uv.fs_open(path, "r", 0)
  if not fd then return nil, ("gondolin: checkpoint %s: %s"):format(path, tostring(err)) end
  local st = uv.fs_fstat(fd)
  local head = uv.fs_read(fd, 4, 0)
  local n = math.min(st.size, MAX_META + TRAILER)
  local tail = uv.fs_read(fd, n, st.size - n)
  uv.fs_close(fd)
  if head ~= "QFI\xfb" then return nil, ("gondolin: checkpoint %s: not a qcow2 file"):format(path) end
  local meta, derr = M.decode_trailer(tail or "")
  if not meta then return nil, ("gondolin: checkpoint %s: %s"):format(path, derr) end
  return setmetatable({ path = path, name = meta.name, created = meta.created, build_id = meta.build_id,
                        image = meta.image, disk_bytes = meta.disk_bytes, meta = meta }, Checkpoint)
end

--- Start a VM from the checkpoint: opts as for gondolin.vm (without image).
function Checkpoint:resume(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("gondolin: resume: options must be a table", 2) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.checkpoint = self
  return require("gondolin.vm").new(o)
end

--- Remove the checkpoint file. Returns true or nil, err.
function Checkpoint:delete()
  local ok, err, code = uv.fs_unlink(self.path)
  if not ok and code ~= "ENOENT" then return nil, err end
  return true
end

function Checkpoint:__tostring()
  return ("gondolin.checkpoint %s (image %s, build %s)"):format(self.path, self.image, self.build_id)
end

--- Check that a checkpoint's image is in the store; returns the image
-- (as image.resolve gives it, plus the checkpoint as a layer) or raises.
function M.image_of(ck)
  local store = require("gondolin.image.store").open()
  if not store:has(ck.build_id) then
    error(("gondolin: checkpoint %s needs image build %s (%s), which is not in the image store %s; "
      .. "rebuild that image or restore the store"):format(ck.path, ck.build_id, ck.image, store.root), 0)
  end
  local img = require("gondolin.image").resolve(ck.build_id)
  img.layers = { ck.path }
  img.name = ck.image
  return img
end

-- Move a file, copying when the destination is on another filesystem.
local function move(src, dest)
  local ok, _, code = uv.fs_rename(src, dest)
  if ok then return true end
  if code ~= "EXDEV" then return nil, ("cannot move the disk to %s: %s"):format(dest, code) end
  local cok, cerr = uv.fs_copyfile(src, dest)
  if not cok then uv.fs_unlink(dest) return nil, ("cannot copy the disk to %s: %s"):format(dest, tostring(cerr)) end
  uv.fs_unlink(src)
  return true
end

-- Fold the checkpoint layers under the overlay into it, so it sits on the image.
local function flatten(overlay, img)
  local chain = { driver = "raw", ["read-only"] = true, file = { driver = "file", filename = img.rootfs } }
  for _, layer in ipairs(img.layers) do
    chain = { driver = "qcow2", ["read-only"] = true, file = { driver = "file", filename = layer }, backing = chain }
  end
  local top = { driver = "qcow2", file = { driver = "file", filename = overlay }, backing = chain }
  local _, err = command.check { "qemu-img", "rebase", "-q", "-F", "raw", "-b", img.rootfs, "json:" .. json.encode(top) }
  if err then return nil, "cannot fold the earlier checkpoint into this one: " .. err end
  return true
end

--- Turn a stopped VM's overlay into a checkpoint at path (vm.lua calls
-- this once QEMU has exited). Returns the checkpoint or nil, err.
function M.create(overlay, img, path, name)
  if img.layers and #img.layers > 0 then
    local ok, err = flatten(overlay, img)
    if not ok then return nil, "gondolin: checkpoint: " .. err end
  end
  local size = require("gondolin.disk").virtual_size(overlay)
  local ok, err = move(overlay, path)
  if not ok then return nil, "gondolin: checkpoint: " .. err end
  local meta = { format = M.FORMAT, kind = "disk", name = name, created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
                 build_id = img.build_id, image = tostring(img.name), disk_bytes = size }
  local fd, oerr = uv.fs_open(path, "a", 420)
  if not fd then return nil, "gondolin: checkpoint: " .. tostring(oerr) end
  local wok, werr = uv.fs_write(fd, M.encode_trailer(meta), -1)
  local sok = uv.fs_fsync(fd)
  uv.fs_close(fd)
  if not wok or not sok then   -- the disk is there; only its metadata is missing
    return nil, ("gondolin: checkpoint: the disk is at %s but its metadata could not be written: %s")
      :format(path, tostring(werr))
  end
  return M.load(path)
end

M.absolute = absolute

--- Is v a checkpoint (from load or vm:checkpoint)?
function M.is(v)
  return getmetatable(v) == Checkpoint
end

return M

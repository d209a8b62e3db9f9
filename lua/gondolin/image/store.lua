-- image/store.lua - built images on disk, found by build id or name:tag.
--
--   <root>/objects/<build id>/   manifest.json vmlinux initramfs.cpio rootfs.ext4
--   <root>/refs/<name>/<tag>     one line: the build id
--
-- <root> is $GONDOLIN_IMAGE_STORE, else $XDG_CACHE_HOME/gondolin/images.
-- An object appears whole or not at all: builds assemble it in a scratch
-- directory and rename it into objects/. Refs are replaced by rename too,
-- so readers never see half a file. Objects are immutable once there.
local uv = require "luv"
local json = require "gondolin.json"
local files = require "gondolin.files"
local description = require "gondolin.image.description"

local M = {}

M.ARTIFACTS = { kernel = "vmlinux", initramfs = "initramfs.cpio", rootfs = "rootfs.ext4" }
local MANIFEST = "manifest.json"
local MAX_MANIFEST = 4 * 1024 * 1024
local ID_MIN = 8             -- shortest build id prefix a selector may use

local Store = {}
Store.__index = Store

--- The store at root (default: $GONDOLIN_IMAGE_STORE or the user cache).
function M.open(root)
  if not root then
    local env = os.getenv "GONDOLIN_IMAGE_STORE"
    root = env and env ~= "" and env or files.cache_dir() .. "/images"
  end
  return setmetatable({ root = root }, Store)
end

function Store:object_dir(id) return self.root .. "/objects/" .. id end
function Store:ref_path(name, tag) return ("%s/refs/%s/%s"):format(self.root, name, tag) end

--- Every build id in the store, sorted.
function Store:ids()
  local out = {}
  for _, name in ipairs(files.list(self.root .. "/objects")) do
    if name:match("^%x+$") then out[#out + 1] = name end
  end
  return out
end

function Store:has(id)
  return files.exists(self:object_dir(id) .. "/" .. MANIFEST)
end

--- The manifest of object id, or nil, err.
function Store:manifest(id)
  local path = self:object_dir(id) .. "/" .. MANIFEST
  local text, err = files.read(path, MAX_MANIFEST)
  if not text then return nil, err end
  local m, jerr = json.decode(text)
  if type(m) ~= "table" or m.build_id ~= id then
    return nil, ("%s: not a gondolin image manifest%s"):format(path, jerr and " (" .. jerr .. ")" or "")
  end
  return m
end

--- Refs as a list of { name, tag, id }, sorted by name then tag.
function Store:refs()
  local out = {}
  for _, name in ipairs(files.list(self.root .. "/refs")) do
    for _, tag in ipairs(files.list(self.root .. "/refs/" .. name)) do
      if description.ref_part:match(name) and description.ref_part:match(tag) then
        local id = (files.read(self:ref_path(name, tag), 256) or ""):match("^(%x+)%s*$")
        if id then out[#out + 1] = { name = name, tag = tag, id = id } end
      end
    end
  end
  return out
end

--- The build id name:tag points to, or nil.
function Store:ref(name, tag)
  local id = (files.read(self:ref_path(name, tag), 256) or ""):match("^(%x+)%s*$")
  return id
end

--- Point name:tag at id. Returns true or nil, err.
function Store:set_ref(name, tag, id)
  local dir = ("%s/refs/%s"):format(self.root, name)
  local ok, err = files.mkdir_p(dir)
  if not ok then return nil, err end
  return files.write_atomic(self:ref_path(name, tag), id .. "\n")
end

--- Move a finished object directory into place as id. When id already
-- exists (another process built it meanwhile) the new copy is dropped.
function Store:import(dir, id)
  local ok, err = files.mkdir_p(self.root .. "/objects")
  if not ok then return nil, err end
  local dest = self:object_dir(id)
  if self:has(id) then
    files.rm_tree(dir)
    return true
  end
  local rok, rerr, code = uv.fs_rename(dir, dest)
  if not rok then
    if self:has(id) then files.rm_tree(dir) return true end
    return nil, ("cannot move the image into %s: %s (%s)"):format(dest, tostring(rerr), tostring(code))
  end
  return true
end

--- Objects whose manifest has the given rootfs_key (for reusing a rootfs).
function Store:find_rootfs(key)
  for _, id in ipairs(self:ids()) do
    local m = self:manifest(id)
    if m and m.rootfs_key == key and files.exists(self:object_dir(id) .. "/" .. M.ARTIFACTS.rootfs) then
      return self:object_dir(id) .. "/" .. M.ARTIFACTS.rootfs, id
    end
  end
  return nil
end

--- Remove what a selector names: name[:tag] drops that ref, and the object
-- when no other ref points at it; a build id removes the object and every
-- ref to it. Returns a list of what was removed, or nil, err.
function Store:remove(sel)
  local id, how = self:lookup(sel)
  if not id then return nil, how end
  local removed = {}
  local others = 0
  for _, r in ipairs(self:refs()) do
    if r.id == id then
      if how == "id" or (r.name == how.name and r.tag == how.tag) then
        os.remove(self:ref_path(r.name, r.tag))
        uv.fs_rmdir(self.root .. "/refs/" .. r.name)   -- only when now empty
        removed[#removed + 1] = r.name .. ":" .. r.tag
      else
        others = others + 1
      end
    end
  end
  if others == 0 and self:has(id) then
    local ok, err = files.rm_tree(self:object_dir(id))
    if not ok then return nil, err end
    removed[#removed + 1] = id
  end
  return removed
end

--- Split "name[:tag]"; nil when it is not one.
function M.parse_ref(sel)
  local name, tag = sel:match("^([^:]+):([^:]+)$")
  if not name then name, tag = sel, "latest" end
  if #name > 64 or #tag > 64 or not description.ref_part:match(name) or not description.ref_part:match(tag) then
    return nil
  end
  return name, tag
end

--- Resolve a build id (prefix) or name[:tag] to a build id. Returns id and
-- "id" or { name, tag }, or nil and a message.
function Store:lookup(sel)
  if type(sel) ~= "string" or sel == "" then return nil, "empty image selector" end
  if sel:match("^%x+$") and #sel >= ID_MIN then
    local hits = {}
    for _, id in ipairs(self:ids()) do
      if id:sub(1, #sel) == sel:lower() then hits[#hits + 1] = id end
    end
    if #hits == 1 then return hits[1], "id" end
    if #hits > 1 then
      return nil, ("build id prefix '%s' is ambiguous (%s)"):format(sel, table.concat(hits, ", "))
    end
  end
  local name, tag = M.parse_ref(sel)
  if not name then
    return nil, ("'%s' is not an image name[:tag] (names: lower-case letters, digits, . _ -)"):format(sel)
  end
  local id = self:ref(name, tag)
  if id and self:has(id) then return id, { name = name, tag = tag } end
  if id then return nil, ("%s:%s points at build %s, which is not in the store"):format(name, tag, id) end
  return nil, ("no image %s:%s in the store %s (see 'gondolin image list')"):format(name, tag, self.root),
    { name = name, tag = tag }
end

--- The files of object id: { dir, kernel, initramfs, rootfs, manifest }.
function Store:object(id)
  local m, err = self:manifest(id)
  if not m then return nil, err end
  local dir = self:object_dir(id)
  local o = { dir = dir, manifest = m, build_id = id }
  for k, file in pairs(M.ARTIFACTS) do
    if files.exists(dir .. "/" .. file) then o[k] = dir .. "/" .. file end
  end
  if not o.kernel or not o.initramfs then return nil, dir .. ": the image lacks its kernel or initramfs" end
  return o
end

--- Total bytes of an object's files.
function Store:size(id)
  local total = 0
  for _, name in ipairs(files.list(self:object_dir(id))) do
    total = total + (files.size(self:object_dir(id) .. "/" .. name) or 0)
  end
  return total
end

return M

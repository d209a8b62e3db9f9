-- image.lua - find or build what a VM boots: kernel + initramfs [+ rootfs].
--
-- An image is "minimal", an image in the store (image/store.lua: "base",
-- name[:tag], a build id) or a directory holding `vmlinux` or `bzImage`,
-- `initramfs.cpio` and optionally `rootfs.ext4` and `manifest.json`.
-- The bundled images (guest/images/*.lua, i.e. base) are built on first use
-- by image/build.lua. "minimal", and the parts every image is built from,
-- are assembled on demand in the cache:
--   kernel    $XDG_CACHE_HOME/gondolin/kernel/<source version>-<config hash>/
--             (guest/kernel/build.sh; GONDOLIN_KERNEL=/path overrides it)
--   initramfs $XDG_CACHE_HOME/gondolin/initramfs/<inputs hash>.cpio
local files = require "gondolin.files"

local M = {}

local exists, shell_quote = files.exists, files.shell_quote

-- The directory of this file: lua/gondolin in the tree, or the installed copy.
local function module_dir()
  local src = debug.getinfo(1, "S").source
  return (src:sub(2):match("^(.*)/[^/]*$")) or "."
end

--- Where the guest files are (agent binary, init, kernel config).
function M.guest_dir()
  local candidates = { module_dir() .. "/guest", module_dir() .. "/../../build/guest" }
  local env = os.getenv "GONDOLIN_GUEST_DIR"
  if env and env ~= "" then table.insert(candidates, 1, env) end
  for _, dir in ipairs(candidates) do
    if exists(dir .. "/gondolin-agent") then return dir end
  end
  error("gondolin: guest files not found (looked in " .. table.concat(candidates, ", ") ..
    "); run 'make' first or set GONDOLIN_GUEST_DIR", 0)
end

local function run_capture(cmd)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local ok = p:close()
  return ok and out or nil
end

--- Path of the cached kernel for guest/kernel/config, building it if needed
-- (with opts.cached_only: nil when it is not built yet).
function M.kernel(opts)
  local override = os.getenv "GONDOLIN_KERNEL"
  if override and override ~= "" then
    if not exists(override) then
      error("gondolin: GONDOLIN_KERNEL=" .. override .. " does not exist", 0)
    end
    return override
  end
  local script = M.guest_dir() .. "/kernel/build.sh"
  local path = run_capture("sh " .. shell_quote(script) .. " print-path")
  path = path and path:gsub("%s+$", "")
  if path and exists(path) then
    local vmlinux = path:gsub("bzImage$", "vmlinux")
    return exists(vmlinux) and vmlinux or path
  end
  if opts and opts.cached_only then return nil end
  -- Build once; its progress goes to our stderr.
  local ok = os.execute("sh " .. shell_quote(script) .. " >/dev/null")
  if not ok or not path or not exists(path) then
    error("gondolin: building the guest kernel failed (see messages above)", 0)
  end
  return (path:gsub("bzImage$", "vmlinux"))
end

local function sha256_of(paths)
  local quoted = {}
  for i, p in ipairs(paths) do quoted[i] = shell_quote(p) end
  local out = run_capture("cat " .. table.concat(quoted, " ") .. " | sha256sum")
  if not out then error("gondolin: cannot hash " .. table.concat(paths, ", "), 0) end
  return out:sub(1, 16)
end

--- Version string of a bzImage (its setup header points at it), or nil.
function M.kernel_version(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(0x210)
  if not head or #head < 0x210 or head:sub(0x202 + 1, 0x205 + 1) ~= "HdrS" then f:close() return nil end
  local ptr = string.unpack("<I2", head, 0x20E + 1)
  f:seek("set", ptr + 0x200)
  local s = f:read(128)
  f:close()
  return s and s:match("^([%w%.%-%+_]+)")
end

-- Virtio and filesystem drivers a stock kernel may have built as modules.
local STOCK_MODULES = { "virtio_mmio", "virtio_pci", "virtio_console", "virtio_rng",
                        "virtio_net", "virtio_blk", "fuse", "overlay", "ext4" }

local function module_index(dir)
  local index = {}
  local p = io.popen("find " .. shell_quote(dir .. "/kernel") .. " -name '*.ko'")
  for line in p:lines() do
    local name = line:match("([^/]+)%.ko$"):gsub("-", "_")
    index[name] = line
  end
  p:close()
  return index
end

local function module_depends(path)
  local f = io.open(path, "rb")
  local data = f and f:read("a") or ""
  if f then f:close() end
  local deps = data:match("%zdepends=([^%z]*)%z") or ""
  local out = {}
  for d in deps:gmatch("[^,]+") do out[#out + 1] = d:gsub("-", "_") end
  return out
end

--- Modules (in load order) that a stock kernel in `dir` needs; {} if none.
function M.stock_modules(dir)
  local index = module_index(dir)
  local order, seen = {}, {}
  local function visit(name, depth)
    if seen[name] or depth > 32 then return end
    seen[name] = true
    local path = index[name]
    if not path then return end            -- built in (or absent): nothing to load
    for _, d in ipairs(module_depends(path)) do visit(d, depth + 1) end
    order[#order + 1] = path
  end
  for _, m in ipairs(STOCK_MODULES) do visit(m, 0) end
  return order
end

--- For a kernel other than gondolin's own (GONDOLIN_KERNEL): its modules
-- directory, if it has one; nil for gondolin's kernel (no modules).
function M.modules_dir_for(kernel)
  local custom = os.getenv "GONDOLIN_KERNEL"
  if not custom or custom == "" then return nil end
  local dir = os.getenv "GONDOLIN_MODULES"
  if dir and dir ~= "" then return dir end
  local ver = M.kernel_version(kernel)
  if ver and exists("/lib/modules/" .. ver .. "/modules.order") then return "/lib/modules/" .. ver end
  return nil
end

-- The stock-kernel drivers for an initramfs: extra entries, and the hashed
-- inputs they add. The load list is data, not a file, until the build.
local function module_entries(modules_dir)
  local load, extra, hashed = {}, {}, {}
  for _, path in ipairs(M.stock_modules(modules_dir)) do
    local dest = "/lib/modules/" .. path:match("([^/]+)$")
    extra[#extra + 1] = { path, dest }
    load[#load + 1] = dest
    hashed[#hashed + 1] = path
  end
  return extra, hashed, table.concat(load, "\n") .. "\n"
end

--- Path of an initramfs, rebuilt when any of its inputs changes.
-- opts.modules_dir: a stock kernel's /lib/modules/<version> to take drivers
-- from. opts.rootdisk: the initramfs of images with a root disk, which is
-- only the agent (and drivers): no busybox, no floor.
function M.initramfs(opts)
  opts = opts or {}
  local guest = M.guest_dir()
  local builder = guest .. "/image/mkinitramfs.lua"
  local inputs = { agent = guest .. "/gondolin-agent", extra = {} }
  local hashed = { inputs.agent, builder }
  if not opts.rootdisk then
    inputs.busybox = opts.busybox or "/bin/busybox"
    inputs.floor = guest .. "/floor"
    if not exists(inputs.busybox) then
      error("gondolin: " .. inputs.busybox .. " missing: install it with 'apt-get install busybox-static'", 0)
    end
    hashed[#hashed + 1] = inputs.busybox
    hashed[#hashed + 1] = inputs.floor
  end
  local load
  if opts.modules_dir then
    -- drivers go in as /lib/modules/<file>.ko plus /lib/modules/load, in load order
    local more
    inputs.extra, more, load = module_entries(opts.modules_dir)
    table.move(more, 1, #more, #hashed + 1, hashed)
  end
  local key = files.sha256_string(table.concat({ opts.rootdisk and "rootdisk" or "minimal", load or "",
    sha256_of(hashed) }, "\0")):sub(1, 16)
  local dir = files.cache_dir() .. "/initramfs"
  local out = dir .. "/" .. key .. ".cpio"
  if exists(out) then return out end
  files.need_dir(dir)
  local list
  if load then
    list = files.scratch("modules", ".load")
    assert(files.write_atomic(list, load))
    inputs.extra[#inputs.extra + 1] = { list, "/lib/modules/load" }
  end
  local mk = dofile(builder)
  local ok, err = mk.build(out, inputs)
  if list then os.remove(list) end
  if ok == nil and err then error("gondolin: building the initramfs failed: " .. tostring(err), 0) end
  return out
end

M.DEFAULT = "base"

--- The image a VM boots when none is named: $GONDOLIN_IMAGE, else "base".
function M.default()
  local env = os.getenv "GONDOLIN_IMAGE"
  return env and env ~= "" and env or M.DEFAULT
end

-- The env list ("K=V", sorted) a manifest bakes in.
local function manifest_env(m)
  local out = {}
  for k, v in pairs(type(m) == "table" and type(m.env) == "table" and m.env or {}) do
    if type(k) == "string" and type(v) == "string" then out[#out + 1] = k .. "=" .. v end
  end
  table.sort(out)
  return out
end

-- A directory image: vmlinux or bzImage, initramfs.cpio, maybe rootfs.ext4
-- and manifest.json (as `gondolin image build` writes them).
local function resolve_dir(dir)
  local kernel = exists(dir .. "/vmlinux") and dir .. "/vmlinux" or dir .. "/bzImage"
  local img = { name = dir, kernel = kernel, initramfs = dir .. "/initramfs.cpio" }
  if not exists(img.kernel) or not exists(img.initramfs) then
    error("gondolin: image directory " .. dir .. " needs vmlinux or bzImage and initramfs.cpio", 0)
  end
  if exists(dir .. "/rootfs.ext4") then img.rootfs = dir .. "/rootfs.ext4" end
  local text = files.read(dir .. "/manifest.json", 4 * 1024 * 1024)
  local m = text and require("gondolin.json").decode(text)
  if type(m) == "table" then
    img.manifest, img.build_id, img.env = m, m.build_id, manifest_env(m)
  end
  return img
end

local function from_object(o, name)
  return { name = name, kernel = o.kernel, initramfs = o.initramfs, rootfs = o.rootfs, build_id = o.build_id,
           manifest = o.manifest, env = manifest_env(o.manifest), dir = o.dir }
end

--- Resolve an image selector to the files QEMU needs: "minimal", a
-- directory path, a build id (or a unique prefix of 8+ digits), or
-- name[:tag] from the image store. A bundled image ("base") is built on
-- first use. Raises with the accepted forms when nothing matches.
function M.resolve(sel)
  sel = sel or M.default()
  if sel == "minimal" then
    local kernel = M.kernel()
    local modules = M.modules_dir_for(kernel)
    return { name = "minimal", kernel = kernel, initramfs = M.initramfs { modules_dir = modules },
             stock = modules ~= nil }
  end
  -- a directory is named as a path ("./dir", "/abs/dir"): a folder in the
  -- current directory that happens to be called "base" is not the image base
  if sel:find("/", 1, true) or sel:sub(1, 1) == "." then return resolve_dir(sel) end
  local store = require("gondolin.image.store").open()
  local id, how, asked = store:lookup(sel)
  asked = type(how) == "table" and how or asked     -- the name:tag named, if any
  if asked then
    local o, err = require("gondolin.image.build").ensure_builtin(asked.name, asked.tag, store)
    if o then return from_object(o, asked.name .. ":" .. asked.tag) end
    if err then error(err, 0) end
  end
  if id then
    local o, err = store:object(id)
    if not o then error("gondolin: image " .. sel .. ": " .. tostring(err), 0) end
    return from_object(o, how == "id" and id or how.name .. ":" .. how.tag)
  end
  local have = {}
  for _, r in ipairs(store:refs()) do have[#have + 1] = r.name .. ":" .. r.tag end
  error(("gondolin: unknown image '%s': %s (accepted: \"minimal\", \"base\", a name[:tag] from "
    .. "'gondolin image list'%s, a build id, or a directory with vmlinux and initramfs.cpio)")
    :format(sel, how, #have > 0 and ": " .. table.concat(have, ", ") or ""), 0)
end

return M

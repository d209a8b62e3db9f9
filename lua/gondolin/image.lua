-- image.lua - find or build what a VM boots: kernel + initramfs [+ rootfs].
--
-- An image is a name (only "minimal" today) or a directory holding
-- `vmlinux` or `bzImage`, `initramfs.cpio` and optionally `rootfs.ext4`.
-- "minimal" is assembled on demand in the cache:
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

--- Path of the cached kernel for guest/kernel/config, building it if needed.
function M.kernel()
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

-- For GONDOLIN_KERNEL: its modules directory, if it has one.
local function modules_dir_for(kernel)
  local dir = os.getenv "GONDOLIN_MODULES"
  if dir and dir ~= "" then return dir end
  local ver = M.kernel_version(kernel)
  if ver and exists("/lib/modules/" .. ver .. "/modules.order") then return "/lib/modules/" .. ver end
  return nil
end

--- Path of the minimal initramfs, rebuilt when any of its inputs changes.
-- opts.modules_dir: a stock kernel's /lib/modules/<version> to take drivers from.
function M.initramfs(opts)
  opts = opts or {}
  local guest = M.guest_dir()
  local busybox = opts.busybox or "/bin/busybox"
  if not exists(busybox) then
    error("gondolin: " .. busybox .. " missing: install it with 'apt-get install busybox-static'", 0)
  end
  local inputs = { agent = guest .. "/gondolin-agent", floor = guest .. "/floor", busybox = busybox }
  local builder = guest .. "/image/mkinitramfs.lua"
  local hashed = { inputs.agent, inputs.floor, inputs.busybox, builder }
  inputs.extra = {}
  if opts.modules_dir then
    -- drivers go in as /lib/modules/<file>.ko plus /lib/modules/load, in load order
    local load, extra = {}, inputs.extra
    for _, path in ipairs(M.stock_modules(opts.modules_dir)) do
      local dest = "/lib/modules/" .. path:match("([^/]+)$")
      extra[#extra + 1] = { path, dest }
      load[#load + 1] = dest
      hashed[#hashed + 1] = path
    end
    local list = os.tmpname()
    local f = assert(io.open(list, "w"))
    f:write(table.concat(load, "\n"), "\n")
    f:close()
    extra[#extra + 1] = { list, "/lib/modules/load" }
    hashed[#hashed + 1] = list
  end
  local key = sha256_of(hashed)
  local dir = files.cache_dir() .. "/initramfs"
  local out = dir .. "/" .. key .. ".cpio"
  if exists(out) then return out end
  files.need_dir(dir)
  local mk = dofile(builder)
  local ok, err = mk.build(out, inputs)
  if opts.modules_dir then os.remove(inputs.extra[#inputs.extra][1]) end
  if ok == nil and err then error("gondolin: building the initramfs failed: " .. tostring(err), 0) end
  return out
end

--- Resolve an image name or directory to the files QEMU needs.
function M.resolve(image)
  image = image or "minimal"
  if image == "minimal" then
    local kernel = M.kernel()
    local custom = os.getenv "GONDOLIN_KERNEL"
    local modules = custom and custom ~= "" and modules_dir_for(kernel) or nil
    return { name = "minimal", kernel = kernel, initramfs = M.initramfs { modules_dir = modules },
             stock = modules ~= nil }
  end
  if image:find("/", 1, true) or exists(image .. "/initramfs.cpio") then
    local kernel = exists(image .. "/vmlinux") and image .. "/vmlinux" or image .. "/bzImage"
    local img = { name = image, kernel = os.getenv "GONDOLIN_KERNEL" or kernel,
                  initramfs = image .. "/initramfs.cpio" }
    if exists(image .. "/rootfs.ext4") then img.rootfs = image .. "/rootfs.ext4" end
    if not exists(img.kernel) or not exists(img.initramfs) then
      error("gondolin: image directory " .. image ..
        " needs vmlinux or bzImage and initramfs.cpio", 0)
    end
    return img
  end
  error("gondolin: unknown image '" .. image ..
    "' (accepted: \"minimal\" or a directory holding a kernel and initramfs.cpio)", 0)
end

return M

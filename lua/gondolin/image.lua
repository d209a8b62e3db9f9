-- image.lua - find or build what a VM boots: kernel + initramfs [+ rootfs].
--
-- An image is a name (only "minimal" today) or a directory holding
-- `vmlinux` or `bzImage`, `initramfs.cpio` and optionally `rootfs.ext4`.
-- "minimal" is assembled on demand in the cache:
--   kernel    $XDG_CACHE_HOME/gondolin/kernel/<source version>-<config hash>/
--             (guest/kernel/build.sh; GONDOLIN_KERNEL=/path overrides it)
--   initramfs $XDG_CACHE_HOME/gondolin/initramfs/<inputs hash>.cpio
local M = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end
M.exists = exists

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local function mkdir_p(dir)
  local ok = os.execute("mkdir -p " .. shell_quote(dir))
  if not ok then error("gondolin: cannot create directory " .. dir, 0) end
end

function M.cache_dir()
  local base = os.getenv "XDG_CACHE_HOME"
  if not base or base == "" then
    base = (os.getenv "HOME" or "/tmp") .. "/.cache"
  end
  return base .. "/gondolin"
end

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

--- Path of the minimal initramfs, rebuilt when any of its inputs changes.
function M.initramfs(opts)
  opts = opts or {}
  local guest = M.guest_dir()
  local busybox = opts.busybox or "/bin/busybox"
  if not exists(busybox) then
    error("gondolin: " .. busybox .. " missing: install it with 'apt-get install busybox-static'", 0)
  end
  local inputs = {
    agent = guest .. "/gondolin-agent", init = guest .. "/init",
    floor = guest .. "/floor", busybox = busybox,
  }
  local builder = guest .. "/image/mkinitramfs.lua"
  local key = sha256_of { inputs.agent, inputs.init, inputs.floor, inputs.busybox, builder }
  local dir = M.cache_dir() .. "/initramfs"
  local out = dir .. "/" .. key .. ".cpio"
  if exists(out) then return out end
  mkdir_p(dir)
  local mk = dofile(builder)
  mk.build(out, inputs)
  return out
end

--- Resolve an image name or directory to the files QEMU needs.
function M.resolve(image)
  image = image or "minimal"
  if image == "minimal" then
    return { name = "minimal", kernel = M.kernel(), initramfs = M.initramfs() }
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

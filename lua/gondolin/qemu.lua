-- qemu.lua - the QEMU command line, and which accelerator works here.
--
-- Channels are socketpair ends inherited by QEMU at fixed descriptor
-- numbers (FD below), so nothing ever appears on disk. The machine is a
-- microvm (virtio-mmio, no firmware option ROMs): the fastest to boot.
local core = require "gondolin.core"
local files = require "gondolin.files"

local M = {}

-- Descriptor numbers in the QEMU child.
M.FD = { stderr = 2, control = 3, qmp = 4, console = 5, net = 6, fs = 7 }

-- The guest's MAC address (net_config_default in csrc/net/net.c agrees).
M.GUEST_MAC = "02:00:00:00:00:01"

M.binary = "qemu-system-x86_64"

local function which(prog)
  if prog:find("/", 1, true) then return files.exists(prog) and prog or nil end
  for dir in (os.getenv "PATH" or "/usr/bin:/bin"):gmatch("[^:]+") do
    local p = dir .. "/" .. prog
    if files.exists(p) then return p end
  end
  return nil
end

--- Full path of the QEMU binary, or a clear error naming the package.
function M.find(binary)
  binary = binary or os.getenv "GONDOLIN_QEMU" or M.binary
  local path = which(binary)
  if not path then
    error("gondolin: " .. binary .. " not found: install it with " ..
      "'apt-get install qemu-system-x86' (or run 'make deps')", 0)
  end
  return path
end

local tsc_khz
--- The kernel command line for one boot.
function M.cmdline(cfg)
  local parts = { "console=ttyS0", "quiet", "panic=-1", "8250.nr_uarts=1" }
  if cfg.initrd then parts[#parts + 1] = "rdinit=" .. (cfg.init or "/init") end
  if cfg.accel == "tcg" then
    -- see core.tsc_khz: a microvm under TCG cannot calibrate its TSC
    tsc_khz = tsc_khz or core.tsc_khz()
    if tsc_khz then parts[#parts + 1] = "tsc_early_khz=" .. tsc_khz end
  end
  if cfg.disk then parts[#parts + 1] = cfg.disk.cmdline end
  -- the interception CA's certificate (never its key), for guest/agent/trust.c
  if cfg.ca then parts[#parts + 1] = "gondolin.ca=" .. cfg.ca end
  if cfg.mounts then parts[#parts + 1] = cfg.mounts end   -- gondolin.mounts=, for the FUSE client
  if cfg.append and cfg.append ~= "" then parts[#parts + 1] = cfg.append end
  return table.concat(parts, " ")
end

--- argv for one boot. cfg: binary, accel, memory (MiB), cpus, kernel, initrd
-- (nil: none, the benchmark floor of a root disk), append, init, disk (from
-- disk.open: its args and command-line word), mounts (the gondolin.mounts=
-- word: the VM has a gondolin.fs port).
function M.argv(cfg)
  local a = {
    cfg.binary, "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
    "-machine", "microvm,x-option-roms=off,isa-serial=on,rtc=on",
    "-accel", cfg.accel, "-cpu", cfg.accel == "kvm" and "host" or "max",
    "-m", tostring(cfg.memory), "-smp", tostring(cfg.cpus),
    "-kernel", cfg.kernel, "-append", M.cmdline(cfg),
    "-chardev", "socket,id=con,fd=" .. M.FD.console, "-serial", "chardev:con",
    "-chardev", "socket,id=qmp,fd=" .. M.FD.qmp, "-mon", "chardev=qmp,mode=control",
    "-device", "virtio-serial-device,max_ports=4",
    "-chardev", "socket,id=ctl,fd=" .. M.FD.control,
    "-device", "virtserialport,chardev=ctl,name=gondolin.control",
    "-netdev", "stream,id=net0,addr.type=fd,addr.str=" .. M.FD.net,
    "-device", "virtio-net-device,netdev=net0,mac=" .. M.GUEST_MAC,
    "-object", "rng-random,filename=/dev/urandom,id=rng0",
    "-device", "virtio-rng-device,rng=rng0",
  }
  if cfg.mounts then
    for _, v in ipairs { "-chardev", "socket,id=fs,fd=" .. M.FD.fs,
                         "-device", "virtserialport,chardev=fs,name=gondolin.fs" } do a[#a + 1] = v end
  end
  if cfg.initrd then
    a[#a + 1] = "-initrd"
    a[#a + 1] = cfg.initrd
  end
  for _, arg in ipairs(cfg.disk and cfg.disk.args or {}) do a[#a + 1] = arg end
  return a
end

local function boot_id()
  local f = io.open("/proc/sys/kernel/random/boot_id", "r")
  local id = f and f:read("l")
  if f then f:close() end
  return id or "unknown"
end

local function verdict_path()
  return files.cache_dir() .. "/accel-" .. boot_id()
end

--- Cached verdict for KVM on this host boot: "kvm", "tcg" or nil (unknown).
function M.cached_verdict()
  local f = io.open(verdict_path(), "r")
  if not f then return nil end
  local v = f:read("l")
  f:close()
  return (v == "kvm" or v == "tcg") and v or nil
end

function M.save_verdict(v)
  files.mkdir_p(files.cache_dir())
  local f = io.open(verdict_path(), "w")
  if f then f:write(v, "\n") f:close() end
end

--- Accelerators to try, in order, for a requested mode.
function M.plan(accel)
  if accel == "kvm" or accel == "tcg" then return { accel } end
  local kvm = io.open("/dev/kvm", "r+")
  if not kvm then return { "tcg" } end
  kvm:close()
  local v = M.cached_verdict()
  if v == "tcg" then return { "tcg" } end
  if v == "kvm" then return { "kvm" } end
  return { "kvm", "tcg" }
end

return M

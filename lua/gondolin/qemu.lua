-- qemu.lua - the QEMU command line, and which accelerator works here.
--
-- Channels are socketpair ends inherited by QEMU at fixed descriptor
-- numbers (FD below), so nothing ever appears on disk. The machine is a
-- microvm (virtio-mmio, no firmware option ROMs): the fastest to boot.
--
-- Confinement (docs/security.md, "QEMU confinement"): QEMU runs under its
-- own seccomp filter (-sandbox), with no_new_privs, rlimits sized from the
-- guest's memory and, when we are root, as an unprivileged user. Every
-- file it needs is opened here and inherited (M.inherit), so the dropped
-- user needs no access to our cache directory.
local uv = require "luv"
local core = require "gondolin.core"
local files = require "gondolin.files"

local M = {}

-- Descriptor numbers in the QEMU child; inherited files take FD.files and up.
M.FD = { stderr = 2, control = 3, qmp = 4, console = 5, net = 6, fs = 7, files = 8 }
M.MAX_FILES = 8   -- kernel, initrd, base, checkpoint layers, overlay (spawn.h: 16 fds in all)

-- QEMU's own seccomp filter: no obsolete syscalls, no setuid/setgid/
-- capability changes, no fork/exec, no scheduler or priority changes.
M.SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

local MiB = 1024 * 1024
-- RLIMIT_AS: guest memory plus QEMU's own. Measured on QEMU 7.2 under TCG
-- (VmPeak, 512 MiB and 2 GiB guests): + 1.7-1.8 GiB after boot (the 1 GiB
-- translation cache is one mapping, plus thread stacks and malloc arenas),
-- up to + 2.3 GiB with 96 parallel guest writers. A thread QEMU cannot
-- create aborts it, so the allowance leaves room for its whole block-I/O
-- pool (64 threads of 8 MiB stacks). KVM has no translation cache.
M.AS_ALLOWANCE = { tcg = 4096 * MiB, kvm = 3072 * MiB }
M.NOFILE = 256       -- QEMU's own descriptors: a few dozen
M.NPROC = 4096       -- tasks of the QEMU uid (all VMs sharing it), set only after a uid drop
M.DEFAULT_USER = "nobody"
M.FALLBACK_ID = 65534   -- nobody/nogroup where the name does not resolve
M.ENV_KEEP = { "PATH", "LD_LIBRARY_PATH" }   -- QEMU gets no other host variable

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
    -- event_idx=off: with event indexes, QEMU 7.2 loses a transmit kick when
    -- its write to our socket blocked (virtio_net_tx_complete re-arms the
    -- queue with no barrier before its last empty check) and the guest's
    -- NIC stays wedged for good; the flag protocol has the barrier. A frame
    -- flood hit it about once in 8 runs (docs/security.md, "Hostile-guest battery").
    "-device", "virtio-net-device,netdev=net0,event_idx=off,mac=" .. M.GUEST_MAC,
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
  if cfg.sandbox ~= false then
    a[#a + 1] = "-sandbox"
    a[#a + 1] = M.SANDBOX
  end
  for _, arg in ipairs(cfg.fd_args or {}) do a[#a + 1] = arg end   -- -add-fd before the disk uses it
  for _, arg in ipairs(cfg.disk and cfg.disk.args or {}) do a[#a + 1] = arg end
  return a
end

local Inherit = {}
Inherit.__index = Inherit

--- Files QEMU would open by name, opened here instead (CLOEXEC; only the
-- spawn hands them over). i:path() names one for a loader that opens a
-- path (-kernel, -initrd): /proc/self/fd/N reaches the inode without
-- walking our directories, but its own mode still applies. i:fdset()
-- names one for the block layer: /dev/fdset/N makes QEMU dup our
-- descriptor, so the access mode we opened with is all that counts.
-- i.fds goes to core.spawn, i.args to the command line; i:close() after
-- the spawn (or on failure) closes our copies.
function M.inherit(identity)
  return setmetatable({ fds = {}, args = {}, host = {}, id = identity }, Inherit)
end

-- Through /proc/self/fd the inode's own mode still applies: say so clearly
-- rather than let QEMU fail on "/proc/self/fd/8" (images are 0644).
local function readable_by(id, path)
  local st = id and uv.fs_stat(path)
  if not st then return true end
  local m = st.mode
  if st.uid == id.uid then return m & 256 ~= 0 end
  local groups = { [id.gid] = true }
  for _, g in ipairs(id.groups or {}) do groups[g] = true end
  if groups[st.gid] then return m & 32 ~= 0 end
  return m & 4 ~= 0
end

function Inherit:_open(path, mode)
  if #self.host >= M.MAX_FILES then
    return nil, ("gondolin: qemu needs more than %d files"):format(M.MAX_FILES)
  end
  local fd, err = uv.fs_open(path, mode == "rw" and "r+" or "r", 0)
  if not fd then return nil, "gondolin: cannot open " .. path .. ": " .. tostring(err) end
  self.host[#self.host + 1] = fd
  local target = M.FD.files + #self.fds
  self.fds[#self.fds + 1] = { target, fd }
  return target
end

--- "/proc/self/fd/N" for path (a file or a directory), opened read-only;
-- or nil, err.
function Inherit:path(path)
  if not readable_by(self.id, path) then
    return nil, ("gondolin: QEMU runs as %s and cannot read %s: make it readable to that user (chmod o+r) or set vm option 'qemu_user'")
      :format(self.id.name, path)
  end
  local target, err = self:_open(path, "r")
  if not target then return nil, err end
  return "/proc/self/fd/" .. target
end

--- "/dev/fdset/N" for path opened with mode ("r" or "rw"); or nil, err.
function Inherit:fdset(path, mode)
  local target, err = self:_open(path, mode)
  if not target then return nil, err end
  local set = #self.fds   -- 1, 2, ...: one set per file
  self.args[#self.args + 1] = "-add-fd"
  self.args[#self.args + 1] = ("fd=%d,set=%d"):format(target, set)
  return "/dev/fdset/" .. set
end

function Inherit:close()
  for _, fd in ipairs(self.host) do uv.fs_close(fd) end
  self.host = {}
end

--- Who QEMU runs as. As root: user (a name or uid; default "nobody"),
-- never root, with only the kvm group kept (for /dev/kvm). As anyone
-- else: ourselves (nil); naming another user is an error, since only
-- root can switch. Returns { uid, gid, groups, name } or nil, or nil, err.
function M.identity(user)
  local euid = core.geteuid()
  if euid ~= 0 then
    local u = user ~= nil and core.user(user)
    if user ~= nil and not (u and u.uid == euid) then
      return nil, ("gondolin: vm option 'qemu_user' (%s): running QEMU as another user needs a host process running as root")
        :format(tostring(user))
    end
    return nil
  end
  local u, err = core.user(user or M.DEFAULT_USER)
  if not u and user == nil then
    u = { uid = M.FALLBACK_ID, gid = M.FALLBACK_ID, name = tostring(M.FALLBACK_ID) }
  elseif not u then
    return nil, "gondolin: vm option 'qemu_user': " .. err
  end
  if u.uid == 0 then
    return nil, ("gondolin: vm option 'qemu_user' (%s): QEMU must not run as root"):format(tostring(user))
  end
  local kvm = core.group("kvm")
  u.groups = { kvm }
  return u
end

--- The environment QEMU starts with: M.ENV_KEEP from ours, and TMPDIR.
function M.environment(tmpdir)
  local env, ours = {}, uv.os_environ()
  for _, k in ipairs(M.ENV_KEEP) do
    if ours[k] then env[#env + 1] = k .. "=" .. ours[k] end
  end
  if tmpdir then env[#env + 1] = "TMPDIR=" .. tmpdir end
  return env
end

--- core.spawn's opts for one boot. cfg: memory (MiB), accel, identity (from
-- M.identity, or nil), tmpdir (or nil).
function M.confinement(cfg)
  local id = cfg.identity
  local o = {
    rlimits = { as = cfg.memory * MiB + (M.AS_ALLOWANCE[cfg.accel] or M.AS_ALLOWANCE.tcg),
                nofile = M.NOFILE,
                nproc = id and M.NPROC or nil },   -- counts the whole uid's tasks: ours would include the host
    env = M.environment(cfg.tmpdir),
  }
  if id then o.uid, o.gid, o.groups = id.uid, id.gid, id.groups end
  return o
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

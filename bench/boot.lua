-- bench/boot.lua - cold boot time, spawn -> agent hello, against a floor
-- measured in the same run:
--   initramfs: the same kernel + initramfs reaching init and printing a
--              marker (rdinit=/floor), no agent;
--   root disk: the same kernel with the same disk (a cow overlay over base)
--              and no initramfs: the kernel mounts /dev/vda itself and runs
--              /bin/echo from it (init=/bin/echo -- MARKER).
-- Then, in the base guest: how long python3 -c pass, git --version and
-- /bin/true take, as vm:exec round trips.
-- Run: gondolin bench/boot.lua [N]
package.path = "bench/?.lua;" .. package.path
local gondolin = require "gondolin"
local core = require "gondolin.core"
local image = require "gondolin.image"
local qemu = require "gondolin.qemu"
local disk = require "gondolin.disk"
local sched = require "gondolin.sched"
local uv = require "luv"

local N = tonumber(arg and arg[1]) or 7
local MARKER = "GONDOLIN-FLOOR"

local median = require("common").median

-- One floor boot: time from spawn until the console shows the marker.
local function floor_boot(cfg)
  local con_h, con_g = core.socketpair()
  -- the same devices as a real boot; the floor just never talks on them
  local others = {}
  for _, name in ipairs { "control", "qmp", "net" } do
    local h, g = core.socketpair()
    others[#others + 1] = { name = name, h = h, g = g }
  end
  cfg.binary, cfg.memory, cfg.cpus = qemu.find(), 512, 1
  local argv = qemu.argv(cfg)
  local seen = sched.event()
  local t0 = uv.hrtime()
  local fds = { { qemu.FD.console, con_g } }
  for _, o in ipairs(others) do fds[#fds + 1] = { qemu.FD[o.name], o.g } end
  local proc = assert(core.spawn(argv, fds, function() sched.fire(seen, false) end))
  core.close_fd(con_g)
  for _, o in ipairs(others) do core.close_fd(o.g) end
  local pipe = uv.new_pipe(false)
  pipe:open(con_h)
  local buf = ""
  pipe:read_start(function(_, data)
    if data then
      buf = (buf .. data):sub(-64)
      if buf:find(MARKER, 1, true) then sched.fire(seen, true, uv.hrtime()) end
    end
  end)
  local ok, t1 = sched.wait(seen, 60)
  pipe:close()
  proc:close()
  for _, o in ipairs(others) do core.close_fd(o.h) end
  assert(ok, "floor boot did not print its marker")
  return (t1 - t0) / 1e9
end

local function boot_pair(name, opts, floor_cfg)
  local floor, full, call = {}, {}, {}
  local accel
  for i = 1, N do
    local t0 = uv.hrtime()
    local vm = gondolin.vm(opts)
    call[i] = (uv.hrtime() - t0) / 1e9
    full[i] = vm.boot_time
    accel = vm.accel
    local img = vm.image
    vm:close()
    floor[i] = floor_cfg(img, accel)
  end
  return { name = name, floor = median(floor), full = median(full), call = median(call), accel = accel }
end

local minimal = boot_pair("initramfs (minimal)", { image = "minimal" }, function(img, accel)
  return floor_boot { accel = accel, kernel = img.kernel, initrd = img.initramfs, init = "/floor" }
end)

local base = boot_pair("root disk (base, cow)", { image = "base" }, function(img, accel)
  local d = assert(disk.open(img, { mode = "cow" }))
  d.cmdline = "root=/dev/vda rootfstype=ext4 ro init=/bin/echo -- " .. MARKER
  local t = floor_boot { accel = accel, kernel = img.kernel, disk = d }
  disk.close(d)
  return t
end)

print(("boot: median of %d cold boots under %s"):format(N, minimal.accel))
for _, r in ipairs { minimal, base } do
  local target = r == minimal and "1.1x" or "1.2x"
  print(("  %s"):format(r.name))
  print(("    floor (kernel -> marker, no agent):   %.3f s"):format(r.floor))
  print(("    gondolin (spawn -> agent hello):      %.3f s  ratio %.2fx (target <= %s)")
    :format(r.full, r.full / r.floor, target))
  print(("    gondolin.vm{} call (image, disk, boot): %.3f s"):format(r.call))
end

-- Commands in the base guest: median round trip of M execs each.
local M = 20
local vm <close> = gondolin.vm { image = "base" }
print(("in the base guest (median of %d vm:exec round trips):"):format(M))
for _, cmd in ipairs { { "/bin/true" }, { "python3", "-c", "pass" }, { "git", "--version" } } do
  vm:exec(cmd)   -- warm the page cache, as a second run would be
  local t = {}
  for i = 1, M do
    local t0 = uv.hrtime()
    local r = vm:exec(cmd)
    t[i] = (uv.hrtime() - t0) / 1e6
    assert(r.code == 0, table.concat(cmd, " ") .. " failed: " .. tostring(r.stderr))
  end
  print(("  %-22s %7.1f ms"):format(table.concat(cmd, " "), median(t)))
end

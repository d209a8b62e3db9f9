-- bench/boot.lua - cold boot time, spawn -> agent hello, against the floor:
-- the same kernel + initramfs reaching init and printing a marker, no agent.
-- Run: gondolin bench/boot.lua [N]
local gondolin = require "gondolin"
local core = require "gondolin.core"
local image = require "gondolin.image"
local qemu = require "gondolin.qemu"
local sched = require "gondolin.sched"
local uv = require "luv"

local N = tonumber(arg and arg[1]) or 7

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- One floor boot: time from spawn until the console shows the marker.
local function floor_boot(img, accel)
  local con_h, con_g = core.socketpair()
  -- the same devices as a real boot; the floor just never talks on them
  local others = {}
  for _, name in ipairs { "control", "qmp", "net" } do
    local h, g = core.socketpair()
    others[#others + 1] = { name = name, h = h, g = g }
  end
  local argv = qemu.argv { binary = qemu.find(), accel = accel, memory = 512, cpus = 1,
                           kernel = img.kernel, initrd = img.initramfs, init = "/floor" }
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
      if buf:find("GONDOLIN-FLOOR", 1, true) then sched.fire(seen, true, uv.hrtime()) end
    end
  end)
  local ok, t1 = sched.wait(seen, 60)
  pipe:close()
  proc:close()
  for _, o in ipairs(others) do core.close_fd(o.h) end
  assert(ok, "floor boot did not print its marker")
  return (t1 - t0) / 1e9
end

local img = image.resolve("minimal")
local floor, full = {}, {}
local accel
for i = 1, N do
  local vm = gondolin.vm { image = "minimal" }
  full[i] = vm.boot_time
  accel = vm.accel
  vm:close()
  floor[i] = floor_boot(img, accel)
end
local f, b = median(floor), median(full)
print(("boot: median of %d cold boots under %s"):format(N, accel))
print(("  floor (kernel -> init marker, no agent): %.3f s"):format(f))
print(("  gondolin (spawn -> agent hello):          %.3f s"):format(b))
print(("  ratio: %.2fx (target <= 1.2x)"):format(b / f))

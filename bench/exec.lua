-- bench/exec.lua - round trip of sequential /bin/true execs, against the
-- guest's own fork+exec+wait of /bin/true measured in a loop inside the guest.
-- Run: gondolin bench/exec.lua [N]
local gondolin = require "gondolin"
local uv = require "luv"

local N = tonumber(arg and arg[1]) or 200

local vm <close> = gondolin.vm { image = "minimal" }
-- warm up caches on both sides
for _ = 1, 10 do vm:exec { "/bin/true" } end

local times = {}
for i = 1, N do
  local t0 = uv.hrtime()
  local r = vm:exec { "/bin/true" }
  times[i] = (uv.hrtime() - t0) / 1e9
  assert(r.code == 0)
end
table.sort(times)
local host = times[(N + 1) // 2]

-- In the guest: time N fork+exec+wait of /bin/true with the shell's own clock.
local script = ([[
s=$(cut -d' ' -f1 /proc/uptime); i=0
while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done
e=$(cut -d' ' -f1 /proc/uptime); echo "$s $e"]]):format(N)
local r = vm:exec { "/bin/sh", "-c", script }
local s, e = r.stdout:match("([%d.]+) ([%d.]+)")
local guest = (tonumber(e) - tonumber(s)) / N

local rtt = {}
for i = 1, 50 do rtt[i] = vm:ping() end
table.sort(rtt)

print(("exec: %d sequential /bin/true under %s"):format(N, vm.accel))
print(("  gondolin vm:exec round trip (median): %.2f ms"):format(host * 1000))
print(("  guest fork+exec+wait (mean of loop):  %.2f ms"):format(guest * 1000))
print(("  agent ping round trip (median):       %.2f ms"):format(rtt[25] * 1000))
print(("  ratio: %.2fx (target <= 2x)"):format(host / guest))

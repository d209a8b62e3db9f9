-- bench/hostile.lua - what an attack costs the others, and what an idle VM
-- costs the host. Run: gondolin bench/hostile.lua [MiB] [connections] [rounds]
--
-- 1. Download throughput and new-connection rate through the mediation,
--    with and without a 400-connection slowloris run by the same guest in
--    the background (spec/hostile/attack.py), alternating for `rounds`
--    rounds; medians compared (same run, same VM).
-- 2. This process's RSS with no VM, one idle VM and ten idle VMs, beside
--    the RSS of their QEMUs (a first density figure).
package.path = "bench/?.lua;spec/?.lua;" .. package.path
local gondolin = require "gondolin"
local httpd = require "httpd"
local common = require "common"
local H = require "helpers.hostile"

local MIB = tonumber(arg and arg[1]) or 50
local CONNS = tonumber(arg and arg[2]) or 50
local ROUNDS = tonumber(arg and arg[3]) or 3

local server, port = httpd.start()

local sh, timed, median = common.sh, common.timed, common.median

------------------------------------------------------------------ attack cost
local calm, attacked = { mibps = {}, cps = {} }, { mibps = {}, cps = {} }
do
  local vm <close> = assert(gondolin.vm { image = "base", policy = gondolin.policy {
    allow = { "bench.test" }, allow_internal = { "127.0.0.1:" .. port },
    resolve = { ["bench.test"] = "127.0.0.1" } } })
  local f = assert(io.open("spec/hostile/attack.py"))
  assert(vm.fs:write("/tmp/attack.py", f:read "a"))
  f:close()
  local url = ("http://bench.test:%d"):format(port)
  local function measure(into)
    local s = timed(function() sh(vm, ("curl -fsS -o /dev/null %s/bytes/%d"):format(url, MIB * 1048576)) end)
    into.mibps[#into.mibps + 1] = MIB / s
    s = timed(function()
      sh(vm, ("for i in $(seq %d); do curl -fsS -o /dev/null %s/bytes/64 || exit 1; done"):format(CONNS, url))
    end)
    into.cps[#into.cps + 1] = CONNS / s
  end
  for i = 1, ROUNDS do
    measure(calm)
    local p = vm:spawn({ "/usr/bin/python3", "/tmp/attack.py", "slowloris", "bench.test", tostring(port), "400", "600" },
      { stdout = "ignore", stderr = "ignore" })
    gondolin.sleep(3)   -- the 400 connections are open by then
    measure(attacked)
    p:kill("KILL")
    p:wait(30)
    io.stderr:write(("round %d: download %.1f / %.1f MiB/s, conn/s %.1f / %.1f (calm / under slowloris)\n")
      :format(i, calm.mibps[i], attacked.mibps[i], calm.cps[i], attacked.cps[i]))
    gondolin.sleep(2)
  end
end
server:close()

------------------------------------------------------------------ density
local function qemu_rss(vms)
  local total = 0
  for _, vm in ipairs(vms) do
    local f = io.open("/proc/" .. vm:pid() .. "/status")
    if f then
      total = total + tonumber(f:read("a"):match("VmRSS:%s*(%d+)")) / 1024
      f:close()
    end
  end
  return total
end

collectgarbage() collectgarbage()
local host0 = H.rss_mib()
local vms = {}
vms[1] = assert(gondolin.vm { image = "minimal" })
gondolin.sleep(2)
collectgarbage() collectgarbage()
local host1, qemu1 = H.rss_mib(), qemu_rss(vms)
for i = 2, 10 do vms[i] = assert(gondolin.vm { image = "minimal" }) end
gondolin.sleep(2)
collectgarbage() collectgarbage()
local host10, qemu10 = H.rss_mib(), qemu_rss(vms)
for _, vm in ipairs(vms) do vm:close() end

print(("hostile: %d MiB download, %d connections; medians of %d alternating rounds (base image, TCG)")
  :format(MIB, CONNS, ROUNDS))
local cm, am = median(calm.mibps), median(attacked.mibps)
local cc, ac = median(calm.cps), median(attacked.cps)
print(("  download   calm %7.1f MiB/s  under 400-conn slowloris %7.1f MiB/s  ratio %.2fx"):format(cm, am, am / cm))
print(("  conn/s     calm %7.1f        under 400-conn slowloris %7.1f        ratio %.2fx"):format(cc, ac, ac / cc))
print(("density: host process %.1f MiB with no VM, %.1f MiB with 1 idle VM (+%.1f; its QEMU %.0f MiB), " ..
  "%.1f MiB with 10 (+%.1f each; QEMUs %.0f MiB, %.0f each)")
  :format(host0, host1, host1 - host0, qemu1, host10, (host10 - host0) / 10, qemu10, qemu10 / 10))

-- bench/net.lua - HTTP through gondolin's stack against QEMU's own user-mode
-- networking (slirp), on the same guest and the same host-loopback server:
-- download throughput and new-connection rate, plus host CPU per GiB.
-- Run: gondolin bench/net.lua [MiB] [connections]
package.path = "bench/?.lua;" .. package.path
local gondolin = require "gondolin"
local qemu = require "gondolin.qemu"
local httpd = require "httpd"
local uv = require "luv"

local MIB = tonumber(arg and arg[1]) or 200
local CONNS = tonumber(arg and arg[2]) or 200

local server, port = httpd.start()

-- QEMU's slirp for the reference: the same VM with `-netdev user`.
local function with_slirp(fn)
  local orig = qemu.argv
  qemu.argv = function(cfg)
    local a = orig(cfg)
    for i, v in ipairs(a) do
      if v:match("^stream,id=net0") then a[i] = "user,id=net0" end
    end
    return a
  end
  local ok, err = pcall(fn)
  qemu.argv = orig
  assert(ok, err)
end

local function cpu_seconds()
  local u = uv.getrusage()
  return u.utime.sec + u.utime.usec / 1e6 + u.stime.sec + u.stime.usec / 1e6
end

-- Runs the two measurements in a VM that reaches the server at base_url.
local function measure(vm, base_url)
  local size = MIB * 1024 * 1024
  local c0, t0 = cpu_seconds(), uv.hrtime()
  local r = vm:exec(("wget -q -O - %s/bytes/%d | wc -c"):format(base_url, size))
  local secs = (uv.hrtime() - t0) / 1e9
  local cpu = cpu_seconds() - c0
  assert(r.code == 0 and tonumber(r.stdout) == size, "download failed: " .. r.stdout .. r.stderr)
  local script = ("i=0; while [ $i -lt %d ]; do wget -q -O /dev/null %s/bytes/64 || exit 1; i=$((i+1)); done")
    :format(CONNS, base_url)
  t0 = uv.hrtime()
  r = vm:exec { "/bin/sh", "-c", script }
  local csecs = (uv.hrtime() - t0) / 1e9
  assert(r.code == 0, "connections failed: " .. r.stderr)
  return { mibps = MIB / secs, cps = CONNS / csecs, cpu_per_gib = cpu / (MIB / 1024) }
end

local ours, ref
do
  local vm <close> = gondolin.vm {
    policy = gondolin.policy and gondolin.policy {
      allow = { "bench.test" }, allow_internal = { "127.0.0.1:" .. port },
      resolve = { ["bench.test"] = "127.0.0.1" },
    } or nil,
  }
  ours = measure(vm, "http://bench.test:" .. port)
end
with_slirp(function()
  local vm <close> = gondolin.vm {}
  ref = measure(vm, "http://10.0.2.2:" .. port)   -- slirp's alias for the host
end)
server:close()

print(("net: %d MiB download, %d fresh connections, same guest and server"):format(MIB, CONNS))
print(("  download  gondolin %7.1f MiB/s   slirp %7.1f MiB/s   ratio %.2fx (target >= 1.0x)")
  :format(ours.mibps, ref.mibps, ours.mibps / ref.mibps))
print(("  conn/s    gondolin %7.1f         slirp %7.1f         ratio %.2fx (target >= 1.0x)")
  :format(ours.cps, ref.cps, ours.cps / ref.cps))
print(("  host CPU  gondolin %.2f s/GiB (this process: stack + mediation)"):format(ours.cpu_per_gib))

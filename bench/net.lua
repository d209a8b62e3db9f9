-- bench/net.lua - HTTP through gondolin's stack against QEMU's own user-mode
-- networking (slirp), on the same guest and the same host-loopback server:
-- download throughput and new-connection rate, plus host CPU per GiB.
-- Run: gondolin bench/net.lua [MiB] [connections] [rounds]
-- A second part does HTTPS through the interception (base image, curl)
-- beside plain HTTP through gondolin and slirp, and new TLS connections/s,
-- with how busy the guest's CPU and this process were during the HTTPS
-- download (which side bounds it).
--
-- The machines are shared and noisy, so both VMs stay up and the
-- measurements alternate between them for `rounds` rounds; the medians are
-- compared. The guest writes
-- the download to /dev/null (a pipe into busybox `wc` would cap both at the
-- guest's ~15 MiB/s copy speed) and checks its length from eth0's byte
-- counter. Connections: slirp's guest dials the host's address, so ours is
-- also measured dialling an address (the name resolved once, Host set by
-- hand); the rate by name, a synthetic DNS lookup per request, is printed
-- beside it.
package.path = "bench/?.lua;" .. package.path
local gondolin = require "gondolin"
local httpd = require "httpd"
local common = require "common"
local uv = require "luv"

local sh, median = common.sh, common.median

local MIB = tonumber(arg and arg[1]) or 200
local CONNS = tonumber(arg and arg[2]) or 200
local ROUNDS = tonumber(arg and arg[3]) or 3

local server, port = httpd.start()

-- QEMU's slirp for the reference: the same VM with `-netdev user`. slirp
-- holds a host socket per guest connection until its own TIME_WAIT ends,
-- so 200 connections a round outgrow the 256 descriptors our QEMU gets;
-- past them slirp answers "network unreachable".
local function slirp(image)
  return common.patched(function(a)
    for i, v in ipairs(a) do
      if v:match("^stream,id=net0") then a[i] = "user,id=net0" end
    end
  end, function() return gondolin.vm { image = image } end, { NOFILE = 4096 })
end

local function cpu_seconds()
  local u = uv.getrusage()
  return u.utime.sec + u.utime.usec / 1e6 + u.stime.sec + u.stime.usec / 1e6
end


local function download(vm, base_url, extra)
  local size = MIB * 1024 * 1024
  local script = ("rx=/sys/class/net/eth0/statistics/rx_bytes; a=$(cat $rx); " ..
    "wget -q -O /dev/null %s %s/bytes/%d && echo $(( $(cat $rx) - a ))"):format(extra or "", base_url, size)
  local c0, t0 = cpu_seconds(), uv.hrtime()
  local got = tonumber(sh(vm, script))
  local secs, cpu = (uv.hrtime() - t0) / 1e9, cpu_seconds() - c0
  assert(got >= size, ("download: %d of %d bytes reached eth0"):format(got, size))
  return MIB / secs, cpu / (MIB / 1024)
end

local function conn_rate(vm, url, extra)
  local script = ("i=0; while [ $i -lt %d ]; do wget -q -O /dev/null %s %s || exit 1; i=$((i+1)); done")
    :format(CONNS, extra or "", url)
  local t0 = uv.hrtime()
  sh(vm, script)
  return CONNS / ((uv.hrtime() - t0) / 1e9)
end

-- Both VMs stay up for the whole run; the measurements alternate between
-- them, so both see the same machine at nearly the same time.
local function ours_vm()
  local vm = gondolin.vm {
    image = "minimal",
    policy = gondolin.policy {
      allow = { "bench.test" }, allow_internal = { "127.0.0.1:" .. port },
      resolve = { ["bench.test"] = "127.0.0.1" },
    },
  }
  local ip = sh(vm, "nslookup bench.test"):match("Address:%s*(198%.%d+%.%d+%.%d+)")
  return vm, ("http://bench.test:%d"):format(port), ("http://%s:%d"):format(ip, port),
    ("--header 'Host: bench.test:%d'"):format(port)
end

local function slirp_vm()
  return slirp "minimal", "http://10.0.2.2:" .. port       -- slirp's alias for the host
end

local runs = { ours = {}, slirp = {} }
do
  local ovm <close>, name, addr, host = ours_vm()
  local svm <close>, sbase = slirp_vm()
  for i = 1, ROUNDS do
    local o, s = {}, {}
    o.mibps, o.cpu_per_gib = download(ovm, name)
    s.mibps = download(svm, sbase)
    o.cps = conn_rate(ovm, addr .. "/bytes/64", host)
    s.cps = conn_rate(svm, sbase .. "/bytes/64")
    o.cps_name = conn_rate(ovm, name .. "/bytes/64")
    runs.ours[i], runs.slirp[i] = o, s
    io.stderr:write(("round %d: download %.1f / %.1f MiB/s, conn/s %.1f / %.1f (by name %.1f)\n")
      :format(i, o.mibps, s.mibps, o.cps, s.cps, o.cps_name))
  end
end
server:close()


local function row(label, key, unit)
  local o, s = median(runs.ours, key), median(runs.slirp, key)
  print(("  %-20s gondolin %7.1f %-6s slirp %7.1f %-6s ratio %.2fx (target >= 1.0x)")
    :format(label, o, unit, s, unit, o / s))
end

print(("net: %d MiB download, %d fresh connections; medians of %d alternating rounds")
  :format(MIB, CONNS, ROUNDS))
row("download", "mibps", "MiB/s")
row("conn/s (by address)", "cps", "")
print(("  %-20s gondolin %7.1f        (a synthetic DNS lookup per request)")
  :format("conn/s (by name)", median(runs.ours, "cps_name")))
print(("  %-20s gondolin %.2f s/GiB (this process: stack + mediation)")
  :format("host CPU", median(runs.ours, "cpu_per_gib")))

------------------------------------------------------------------ HTTPS
-- The base image (curl): HTTPS through the interception beside plain HTTP
-- through gondolin and through slirp, same guest image, same run, bodies
-- of the same size. The HTTPS upstream is `openssl s_server -WWW` with a
-- certificate from a throw-away CA given as upstream_ca.
do
  local core = require "gondolin.core"
  local ca_mod = require "gondolin.ca"
  local dir = os.tmpname()
  os.remove(dir)
  assert(uv.fs_mkdir(dir, 448))
  local tca = assert(core.tls_ca(dir .. "/ca"))
  local cert, key = assert(tca:issue("bench.test"))
  local function put(name, data) local f = assert(io.open(dir .. "/" .. name, "wb")) f:write(data) f:close() end
  put("cert.pem", cert) put("key.pem", key) put("upstream-ca.pem", tca:pem())
  os.execute(("head -c %d /dev/zero | tr '\\0' g > %s/blob; echo x > %s/small"):format(MIB * 1048576, dir, dir))
  local probe = uv.new_tcp() probe:bind("127.0.0.1", 0)
  local tport = probe:getsockname().port probe:close()
  local srv = io.popen(("cd %s && exec openssl s_server -quiet -accept 127.0.0.1:%d -cert cert.pem -key key.pem -WWW >/dev/null 2>&1 & echo $!")
    :format(dir, tport)):read("l")
  uv.sleep(500)
  local server2, hport = httpd.start()
  local vm <close> = gondolin.vm {
    image = "base",
    policy = gondolin.policy {
      allow = { "bench.test" }, allow_internal = { "127.0.0.1:" .. tport, "127.0.0.1:" .. hport },
      resolve = { ["bench.test"] = "127.0.0.1" }, upstream_ca = dir .. "/upstream-ca.pem",
    },
  }
  local svm = slirp "base"
  -- One download with curl: MiB/s, the guest's CPU time over the wall time
  -- (bash's `time`) and this process's CPU per GiB.
  local function curl_rate(v, url)
    local c0, t0 = cpu_seconds(), uv.hrtime()
    local r = v:exec { "/bin/bash", "-c", "TIMEFORMAT='%R %U %S'; { time curl -sS -o /dev/null " .. url .. " ; } 2>&1" }
    local secs, cpu = (uv.hrtime() - t0) / 1e9, cpu_seconds() - c0
    assert(r.code == 0, url .. ": " .. r.stdout .. r.stderr)
    local real, user, sys = r.stdout:match("([%d.]+) ([%d.]+) ([%d.]+)")
    return MIB / secs, (tonumber(user) + tonumber(sys)) / tonumber(real), cpu / (MIB / 1024)
  end
  local function conns(v, url, n)
    local t0 = uv.hrtime()
    sh(v, ("i=0; while [ $i -lt %d ]; do curl -sS -o /dev/null %s || exit 1; i=$((i+1)); done"):format(n, url))
    return n / ((uv.hrtime() - t0) / 1e9)
  end
  local suite = sh(vm, ("curl -sv -o /dev/null https://bench.test:%d/small 2>&1"):format(tport))
    :match("SSL connection using (TLSv[%d.]+ / %S+)")
  local r = { https = {}, http = {}, slirp = {}, hs = {}, hs_plain = {}, busy = {}, host = {} }
  local n = math.max(10, CONNS // 10)
  for i = 1, ROUNDS do
    r.https[i], r.busy[i], r.host[i] = curl_rate(vm, ("https://bench.test:%d/blob"):format(tport))
    r.http[i] = (curl_rate(vm, ("http://bench.test:%d/bytes/%d"):format(hport, MIB * 1048576)))
    r.slirp[i] = (curl_rate(svm, ("http://10.0.2.2:%d/bytes/%d"):format(hport, MIB * 1048576)))
    r.hs[i] = conns(vm, ("https://bench.test:%d/small"):format(tport), n)
    r.hs_plain[i] = conns(vm, ("http://bench.test:%d/bytes/2"):format(hport), n)
    io.stderr:write(("https round %d: https %.1f, http %.1f, slirp %.1f MiB/s (guest CPU %.0f%% busy); new conns/s https %.1f http %.1f\n")
      :format(i, r.https[i], r.http[i], r.slirp[i], r.busy[i] * 100, r.hs[i], r.hs_plain[i]))
  end
  svm:close()
  local https, http, slirp = median(r.https), median(r.http), median(r.slirp)
  print(("https: %d MiB with curl in the base image (%s, %s); medians of %d alternating rounds")
    :format(MIB, suite, vm.accel, ROUNDS))
  print(("  %-20s gondolin https %7.1f MiB/s  gondolin http %7.1f  slirp http %7.1f  https/slirp %.2fx (target >= 0.7x)")
    :format("download", https, http, slirp, https / slirp))
  print(("  %-20s guest CPU %.0f%% busy during it (curl's user+sys over wall); this process %.2f s/GiB")
    :format("https bound", median(r.busy) * 100, median(r.host)))
  print(("  %-20s https %7.1f /s  http %7.1f /s (a curl process each)"):format("new connections", median(r.hs), median(r.hs_plain)))
  local st = ca_mod.open():stats()
  if st.misses > 0 then
    print(("  %-20s %.2f ms (%d minted)"):format("leaf generation", st.mint_us / st.misses / 1000, st.misses))
  end
  os.execute("kill " .. srv .. " 2>/dev/null")
  server2:close()
  tca:close()
  os.execute("rm -rf " .. dir)
end

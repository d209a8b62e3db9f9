-- The hostile guest against the host's other ends: exec sessions, output
-- nobody reads, a policy hook that never returns, garbage on the control
-- and FS ports. Each attack is measured (helpers/hostile.lua).
local gondolin = require "gondolin"
local http_server = require "helpers.http_server"
local H = require "helpers.hostile"
local P = require "gondolin.proto"
local uv = require "luv"

local GiB = 1024 * 1024 * 1024

-- Random bytes, reproducible.
local function junk(rand, n)
  local t = {}
  for i = 1, n do t[i] = string.char(rand(0, 255)) end
  return table.concat(t)
end

describe("hostile guest: host ends #hostile", function()
  local srv, vm, base, mount

  setup(function()
    srv = http_server.start()
    base = H.baseline()
    mount = assert(uv.fs_mkdtemp("/tmp/gondolin-hostile-XXXXXX"))
    vm = assert(gondolin.vm { image = "minimal", mounts = { ["/w"] = gondolin.vfs.realfs(mount) },
      policy = gondolin.policy {
        allow = { "svc.test" }, allow_internal = { "127.0.0.1:" .. srv.port },
        resolve = { ["svc.test"] = "127.0.0.1" },
        on_request = function(req)
          if req.path == "/spin" then while true do end end
        end,
      } })
  end)

  teardown(function()
    if vm then vm:close() end
    if srv then srv:close() end
    if mount then os.execute("rm -rf '" .. mount .. "'") end
  end)

  local function get(path)
    return vm:exec(("wget -qO- http://svc.test:%d%s 2>&1; echo rc=$?"):format(srv.port, path)).stdout
  end

  it("runs 1000 exec sessions, 100 at a time, and gives everything back", function()
    H.measure("exec flood x1000", function()
      local ok = 0
      for _ = 1, 10 do
        local ps = {}
        for i = 1, 100 do ps[i] = vm:spawn({ "/bin/true" }, { stdout = "ignore", stderr = "ignore" }) end
        for _, p in ipairs(ps) do
          local r = p:wait()
          if r and r.code == 0 then ok = ok + 1 end
        end
      end
      assert.equal(1000, ok)
      return { sessions_ok = ok }
    end)
  end)

  it("bounds output that nobody reads: 1 GiB unread, and buffered output past max_output", function()
    H.measure("1 GiB to stdout, no reader", function()
      -- nobody reads: the guest process waits on its credit window
      local p = vm:spawn(("head -c %d /dev/zero"):format(GiB), { stdout = "pipe" })
      gondolin.sleep(3)
      local rss = H.rss_mib()
      assert(p:kill("KILL"))
      local drained = 0
      while true do
        local chunk = p:read()
        if not chunk then break end
        drained = drained + #chunk
      end
      local r = assert(p:wait(60))
      assert.equal(9, r.signal)
      assert.is_true(drained < 4 * 1024 * 1024, "the guest ran ahead of its window: " .. drained)
      -- buffered: kept up to max_output, the rest dropped (the process still ends)
      local t0 = uv.hrtime()
      local b = assert(vm:exec("head -c 33554432 /dev/zero", { max_output = 8 * 1024 * 1024 }))
      local secs = (uv.hrtime() - t0) / 1e9
      assert.equal(0, b.code)
      assert.is_true(b.truncated)
      assert.equal(8 * 1024 * 1024, #b.stdout)
      return { unread = ("rss %.0f MiB after 3 s, %d bytes in flight"):format(rss, drained),
               buffered = ("32 MiB in %.1f s, kept 8 MiB"):format(secs), exec_output_limits = vm.limits.exec_output }
    end)
  end)

  it("fails a hook that never returns with 502 and serves the next request", function()
    H.measure("runaway hook", function()
      local out = get "/spin"
      assert.matches("502", out)
      assert.matches("rc=1", out)
      assert.matches("hello, world", get "/hello")
      return {}
    end, H.POOL_SLACK)
  end)

  it("survives garbage frames on the control port", function()
    H.measure("control port garbage", function()
      local rand = math.random
      math.randomseed(11)
      local live = vm:spawn("sleep 30", { stdout = "buffer" })
      for _ = 1, 3000 do
        local t = rand(0, 255)
        if t == P.HELLO then t = P.PONG end   -- a second HELLO is not an attack on the host
        local id = rand(0, 3) == 0 and live.id or rand(0, 0xffffffff)
        vm:_on_frame(t, id, junk(rand, rand(0, 200)))
      end
      local r, err = live:wait()
      assert.equal(0, vm:exec("true").code)
      return { session_under_attack = r and ("exit " .. tostring(r.code)) or err:sub(1, 40) }
    end)
  end)

  it("survives byte garbage on a port: random, truncated and oversized frames", function()
    H.measure("port byte garbage", function()
      local core = require "gondolin.core"
      local rand = math.random
      math.randomseed(19)
      local host_fd, guest_fd = core.socketpair()
      local frames, errors, closed = 0, 0, false
      local ch = core.channel(host_fd, {
        on_frame = function() frames = frames + 1 end,
        on_error = function() errors = errors + 1 end,
        on_close = function() closed = true end,
      })
      local guest = uv.new_pipe(false)
      guest:open(guest_fd)
      local sent = 0
      for i = 1, 2000 do
        local len = ({ 0, 1, 9, rand(0, 300), 0x7fffffff, 0xffffffff, 262144 + 1 })[i % 7 + 1]
        local body = junk(rand, rand(0, 400))
        local bytes = i % 3 == 0 and junk(rand, rand(1, 64)) or string.pack(">I4BI4", len, rand(0, 255), rand(0, 0xffffffff)) .. body
        guest:write(bytes)
        sent = sent + #bytes
      end
      guest:write(string.pack(">I4BI4", 2, 0x40, 1) .. "ok")   -- still framed after all that?
      gondolin.sleep(0.5)
      guest:close()
      gondolin.sleep(0.1)
      ch:close()
      assert.is_true(frames > 0)
      return { bytes = sent, frames_decoded = frames, errors_reported = errors, closed_by_peer = tostring(closed) }
    end)
  end)

  it("survives garbage FS requests and keeps serving the mount", function()
    H.measure("FS RPC garbage", function()
      local rand = math.random
      math.randomseed(13)
      local replies = 0
      local function send() replies = replies + 1 end
      for _ = 1, 5000 do
        vm.vfs:frame(rand(0, 0x3f), rand(1, 1000), junk(rand, rand(0, 300)), send)
      end
      gondolin.sleep(0.2)
      assert.equal(5000, replies)
      assert.equal(0, vm:exec("echo ok > /w/after && cat /w/after").code)
      return { replies = replies, handles = vm.vfs:stats().handles }
    end)
  end)

  it("gives every descriptor back when the VM closes", function()
    vm:close()
    vm = nil
    H.back_to(base)
  end)
end)

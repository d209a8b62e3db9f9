-- QEMU killed at random points (SIGKILL, as the OOM killer or a crash
-- would) during exec, a network transfer and file I/O: every waiting call
-- returns an error, and nothing is left behind.
local gondolin = require "gondolin"
local http_server = require "helpers.http_server"
local H = require "helpers.hostile"
local uv = require "luv"

local ROUNDS = 17   -- per kind: 51 kills in all

describe("hostile: QEMU killed at random points #hostile", function()
  local srv, mount

  setup(function()
    srv = http_server.start()
    mount = assert(uv.fs_mkdtemp("/tmp/gondolin-hostile-kill-XXXXXX"))
  end)

  teardown(function()
    if srv then srv:close() end
    if mount then os.execute("rm -rf '" .. mount .. "'") end
  end)

  local OPS = {
    exec = "i=0; while true; do i=$((i+1)); done",
    network = "wget -qO /dev/null http://svc.test:PORT/bytes/1000000000",
    file = "dd if=/dev/zero of=/w/big bs=1M count=2000 2>/dev/null; sync",
  }

  it("returns errors from the calls in flight and leaves nothing behind (51 kills)", function()
    local base = H.baseline()
    math.randomseed(17)
    local kills, errors = 0, 0
    H.measure("QEMU killed x" .. 3 * ROUNDS, function()
      for round = 1, ROUNDS do
        for _, kind in ipairs { "exec", "network", "file" } do
          local vm = assert(gondolin.vm { image = "minimal",
            mounts = { ["/w"] = gondolin.vfs.realfs(mount) },
            policy = gondolin.policy { allow = { "svc.test" }, allow_internal = { "127.0.0.1:" .. srv.port },
                                       resolve = { ["svc.test"] = "127.0.0.1" } } })
          local done, r, err = false, nil, nil
          gondolin.spawn(function()
            r, err = vm:exec((OPS[kind]:gsub("PORT", tostring(srv.port))))
            done = true
          end)
          gondolin.sleep(0.05 + math.random() * 0.6)
          assert(uv.kill(vm:pid(), "sigkill"))
          kills = kills + 1
          local t0 = uv.hrtime()
          while not done and (uv.hrtime() - t0) < 30e9 do gondolin.sleep(0.02) end
          assert.is_true(done, kind .. " round " .. round .. ": the call in flight never returned")
          if r == nil then errors = errors + 1 else assert.is_truthy(r.code ~= 0 or r.signal) end
          assert.is_nil((vm:exec("true")))
          vm:close()
        end
      end
      os.remove(mount .. "/big")
      return { kills = kills, calls_failed = errors }
    end)
    H.back_to(base)
  end)
end)

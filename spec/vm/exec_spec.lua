-- Boots one VM for the file and runs commands in it.
local gondolin = require "gondolin"
local util = require "helpers.util"

describe("vm:exec", function()
  local vm

  setup(function()
    vm = gondolin.vm { image = "minimal", memory = "512M" }
  end)

  teardown(function()
    if vm then vm:close() end
  end)

  it("boots and receives the agent's hello", function()
    assert.equal(1, vm.info.version)
    assert.truthy(vm.info.kernel:match("gondolin") or vm.info.kernel ~= "")
    assert.is_true(vm.boot_time > 0)
  end)

  it("runs a shell string and reports its output and exit code", function()
    local r = vm:exec "echo hi; exit 3"
    assert.equal(3, r.code)
    assert.equal("hi\n", r.stdout)
    assert.is_false(r.ok)
  end)

  for _, code in ipairs { 0, 1, 3 } do
    it("passes exit code " .. code .. " through", function()
      local r = vm:exec { "/bin/sh", "-c", "exit " .. code }
      assert.equal(code, r.code)
      assert.is_nil(r.signal)
    end)
  end

  it("reports 127 and a message on stderr for a missing binary", function()
    local r = vm:exec { "/no/such/program", "arg" }
    assert.equal(127, r.code)
    assert.matches("/no/such/program", r.stderr)
  end)

  it("searches PATH for argv[0]", function()
    local r = vm:exec { "echo", "found" }
    assert.equal(0, r.code)
    assert.equal("found\n", r.stdout)
  end)

  it("reports death by signal", function()
    local r = vm:exec "kill -9 $$"
    assert.equal(9, r.signal)
    assert.equal("KILL", r.signal_name)
    assert.equal(128 + 9, r.code)
  end)

  it("passes env and cwd", function()
    local r = vm:exec({ "/bin/sh", "-c", "echo $A-$B; pwd" }, { env = { A = "1", B = "two words" }, cwd = "/tmp" })
    assert.equal("1-two words\n/tmp\n", r.stdout)
    local r2 = vm:exec({ "/bin/cat" }, { stdin = "data", env = { A = "1" }, cwd = "/tmp", timeout = 5 })
    assert.equal("data", r2.stdout)
    assert.equal(0, r2.code)
  end)

  it("fails cleanly for a missing cwd", function()
    local r = vm:exec({ "/bin/true" }, { cwd = "/nonexistent" })
    assert.equal(127, r.code)
    assert.matches("/nonexistent", r.stderr)
  end)

  it("round-trips 10 MiB of stdin through cat", function()
    local parts = {}
    local pad = string.rep("x", 1014)
    for i = 1, 10 * 1024 do parts[i] = string.format("%08d ", i) .. pad .. "\n" end
    local data = table.concat(parts)
    assert.equal(10 * 1024 * 1024, #data)
    local r = vm:exec({ "/bin/cat" }, { stdin = data })
    assert.equal(0, r.code)
    assert.equal(#data, #r.stdout)
    assert.equal(util.sha256(data), util.sha256(r.stdout))
    local g = vm:exec({ "/bin/sh", "-c", "sha256sum | cut -d' ' -f1" }, { stdin = data })
    assert.equal(util.sha256(data) .. "\n", g.stdout)
  end)

  it("streams 50 MiB of stdout to a slow reader with bounded host memory", function()
    collectgarbage()
    local rss0 = util.rss_kib()
    local peak, total, chunks = rss0, 0, 0
    gondolin.run(function()
      local p = vm:spawn("head -c 52428800 /dev/zero", { stdout = "pipe" })
      while true do
        local chunk = p:read()
        if not chunk then break end
        total = total + #chunk
        chunks = chunks + 1
        if chunks % 64 == 0 then
          gondolin.sleep(0.002)         -- a consumer slower than the producer
          collectgarbage("step", 0)
          peak = math.max(peak, util.rss_kib())
        end
      end
      assert.equal(0, p:wait().code)
    end)
    assert.equal(52428800, total)
    -- the guest was throttled by credit: host memory grew by far less than 50 MiB
    assert.is_true(peak - rss0 < 32 * 1024, ("RSS grew by %d KiB"):format(peak - rss0))
  end)

  it("runs 32 execs concurrently", function()
    local results = {}
    gondolin.run(function()
      local procs = {}
      for i = 1, 32 do
        procs[i] = vm:spawn({ "/bin/sh", "-c", "sleep 0.3; echo $0", tostring(i) })
      end
      for i, p in ipairs(procs) do results[i] = p:wait() end
    end)
    for i = 1, 32 do
      assert.equal(0, results[i].code)
      assert.equal(i .. "\n", results[i].stdout)
    end
  end)

  it("gives a pty whose size follows resize", function()
    local r = vm:exec({ "tty" }, { pty = true })
    assert.matches("^/dev/pts/%d+", r.stdout)
    local out = {}
    gondolin.run(function()
      local p = vm:spawn({ "/bin/sh" }, { pty = true, rows = 24, cols = 80,
        on_stdout = function(s) out[#out + 1] = s end })
      p:resize(40, 120)
      p:write "stty size\n"
      p:write "exit 0\n"
      local res = p:wait(10)
      assert.equal(0, res.code)
    end)
    assert.matches("40 120", table.concat(out))
  end)

  it("kills a command at its timeout", function()
    local t0 = util.now()
    local r = vm:exec("sleep 100", { timeout = 1 })
    local elapsed = util.now() - t0
    assert.is_true(r.timed_out)
    assert.equal(9, r.signal)
    assert.is_true(elapsed < 50, ("took %.2fs: not killed at its timeout"):format(elapsed))
  end)

  it("delivers signals with kill", function()
    gondolin.run(function()
      local p = vm:spawn "sleep 100"
      gondolin.sleep(0.2)
      assert.is_true(p:kill "TERM")
      local r = p:wait(5)
      assert.equal(15, r.signal)
    end)
  end)

  it("closes stdin on request and reports writes after exit", function()
    gondolin.run(function()
      local p = vm:spawn({ "/bin/cat" }, { stdin = true })
      assert.is_true(p:write "abc")
      p:close_stdin()
      local r = p:wait(5)
      assert.equal("abc", r.stdout)
      local ok, err = p:write "late"
      assert.is_nil(ok)
      assert.truthy(err)
    end)
  end)

  it("answers pings", function()
    local rtt = assert(vm:ping "hello")
    assert.is_true(rtt > 0)
  end)

  it("raises on invalid options, naming them", function()
    assert.has_error(function() vm:exec("true", { tiemout = 1 }) end)
    local ok, err = pcall(vm.exec, vm, "true", { tiemout = 1 })
    assert.matches("tiemout", err)
    assert.matches("timeout", err)
    ok, err = pcall(vm.exec, vm, "true", { cwd = "relative" })
    assert.matches("absolute", err)
    ok, err = pcall(vm.exec, vm, 42)
    assert.matches("command string or an argv table", err)
    assert.is_false(ok)
  end)
end)

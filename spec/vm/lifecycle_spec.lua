-- VM lifecycle: QEMU dying, scripts failing, nothing left behind.
local gondolin = require "gondolin"
local util = require "helpers.util"
local uv = require "luv"

describe("vm lifecycle", function()
  it("fails a pending exec within 2 s when QEMU is killed", function()
    local vm <close> = gondolin.vm { image = "minimal" }
    local pid = vm:pid()
    gondolin.run(function()
      local p = vm:spawn "sleep 100"
      gondolin.sleep(0.2)
      local t0 = util.now()
      uv.kill(pid, "sigkill")
      local r, err = p:wait()
      assert.is_nil(r)
      assert.matches("vm stopped", err)
      assert.matches("signal 9", err)
      assert.is_true(util.now() - t0 < 50)   -- not after the sleep 100
      local r2, err2 = vm:exec "true"
      assert.is_nil(r2)
      assert.matches("vm stopped", err2)
    end)
    assert.is_false(util.alive(pid))
  end)

  it("kills QEMU on close", function()
    local vm = gondolin.vm { image = "minimal" }
    local pid = vm:pid()
    assert.is_true(util.alive(pid))
    assert.is_true(vm:close())
    assert.is_true(vm:close())
    assert.is_false(util.alive(pid))
  end)

  it("closes a VM handle at the end of its scope", function()
    local pid
    do
      local vm <close> = gondolin.vm { image = "minimal" }
      pid = vm:pid()
    end
    assert.is_false(util.alive(pid))
  end)

  local function script_leaves_no_qemu(body)
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/s.lua", "w"))
    f:write(([[
      local gondolin = require "gondolin"
      local vm = gondolin.vm { image = "minimal" }
      local f = io.open(%q, "w") f:write(vm:pid()) f:close()
      %s
    ]]):format(dir .. "/pid", body))
    f:close()
    local rc = util.sh("bin/gondolin " .. dir .. "/s.lua >/dev/null 2>&1")
    local pf = assert(io.open(dir .. "/pid"))
    local pid = tonumber(pf:read("a"))
    pf:close()
    os.execute("rm -rf " .. dir)
    local t0 = util.now()
    while util.alive(pid) and util.now() - t0 < 2 do uv.sleep(20) end
    return rc, util.alive(pid)
  end

  it("leaves no QEMU behind when a script raises", function()
    local rc, alive = script_leaves_no_qemu [[error("boom")]]
    assert.equal(1, rc)
    assert.is_false(alive)
  end)

  it("leaves no QEMU behind when a script calls os.exit", function()
    local rc, alive = script_leaves_no_qemu [[os.exit(3)]]
    assert.equal(3, rc)
    assert.is_false(alive)
  end)

  it("leaves no QEMU behind when the host process is SIGKILLed", function()
    local rc, alive = script_leaves_no_qemu [[
      local uv = require "luv"
      uv.kill(uv.os_getpid(), "sigkill")]]
    assert.equal(137, rc)
    assert.is_false(alive)
  end)

  it("leaves no QEMU behind on Ctrl-C (SIGINT)", function()
    local rc, alive = script_leaves_no_qemu [[
      local uv = require "luv"
      uv.kill(uv.os_getpid(), "sigint")
      require("gondolin").sleep(5)]]
    assert.equal(130, rc)
    assert.is_false(alive)
  end)

  it("kills the QEMU of a VM that is garbage collected", function()
    local pid
    do
      local vm = gondolin.vm { image = "minimal" }
      pid = vm:pid()
      assert.is_true(util.alive(pid))
    end
    collectgarbage() collectgarbage()
    local t0 = util.now()
    while util.alive(pid) and util.now() - t0 < 2 do uv.sleep(20) end
    assert.is_false(util.alive(pid))
  end)

  it("reports a boot failure with the console tail", function()
    local ok, err = pcall(gondolin.vm, { image = "minimal", append = "rdinit=/does-not-exist", boot_timeout = 20 })
    assert.is_false(ok)
    assert.matches("boot failed", err)
    assert.matches("console tail", err)
  end)

  it("raises on invalid vm options, naming option and accepted values", function()
    local cases = {
      { { memory = "lots" }, "memory" }, { { cpus = 0 }, "cpus" },
      { { accel = "xen" }, "accel.*auto, kvm, tcg" }, { { image = "nope" }, "unknown image 'nope'" },
      { { colour = 1 }, "unknown option 'colour'" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(gondolin.vm, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
  end)
end)

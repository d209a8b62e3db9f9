-- The QEMU command line and the accelerator plan (no VM booted).
local qemu = require "gondolin.qemu"
local uv = require "luv"

describe("gondolin.qemu", function()
  local old_cache, dir

  before_each(function()
    old_cache = os.getenv "XDG_CACHE_HOME"
    dir = os.tmpname()
    os.remove(dir)
    uv.os_setenv("XDG_CACHE_HOME", dir)
  end)

  after_each(function()
    if old_cache then uv.os_setenv("XDG_CACHE_HOME", old_cache) else uv.os_unsetenv("XDG_CACHE_HOME") end
    os.execute("rm -rf " .. dir)
  end)

  it("puts the interception CA's certificate on the kernel command line", function()
    local line = qemu.cmdline { accel = "kvm", ca = "MIIBeDCC+/=" }
    assert.matches(" gondolin%.ca=MIIBeDCC%+/= ?", line)
    assert.is_nil(qemu.cmdline({ accel = "kvm" }):find("gondolin.ca=", 1, true))
  end)

  it("honours an explicit accelerator", function()
    assert.same({ "tcg" }, qemu.plan "tcg")
    assert.same({ "kvm" }, qemu.plan "kvm")
  end)

  it("probes KVM first, then follows the verdict cached for this host boot", function()
    local kvm = io.open("/dev/kvm", "r+")
    if not kvm then
      assert.same({ "tcg" }, qemu.plan "auto")
      return
    end
    kvm:close()
    assert.same({ "kvm", "tcg" }, qemu.plan "auto")
    qemu.save_verdict "tcg"
    assert.equal("tcg", qemu.cached_verdict())
    assert.same({ "tcg" }, qemu.plan "auto")
    qemu.save_verdict "kvm"
    assert.same({ "kvm" }, qemu.plan "auto")
  end)

  it("builds an argv with inherited fds and no socket paths", function()
    local argv = qemu.argv { binary = "qemu", accel = "tcg", memory = 256, cpus = 2,
                             kernel = "/k", initrd = "/i", append = "x=1" }
    local s = table.concat(argv, " ")
    assert.matches("%-nodefaults", s)
    assert.matches("socket,id=ctl,fd=3", s)
    assert.matches("socket,id=qmp,fd=4", s)
    assert.matches("name=gondolin.control", s)
    assert.matches("%-smp 2", s)
    assert.is_nil(s:find("path=", 1, true))
    -- the NIC without event indexes: QEMU 7.2 can lose a transmit kick with them
    assert.matches("virtio%-net%-device,netdev=net0,event_idx=off,", s)
    local append = argv[#argv]
    for i, a in ipairs(argv) do if a == "-append" then append = argv[i + 1] end end
    assert.matches("tsc_early_khz=%d+", append)
    assert.matches("x=1$", append)
  end)

  it("names the package when QEMU is missing", function()
    local ok, err = pcall(qemu.find, "qemu-system-nonexistent")
    assert.is_false(ok)
    assert.matches("apt%-get install qemu%-system%-x86", err)
  end)
end)

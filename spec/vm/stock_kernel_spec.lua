-- GONDOLIN_KERNEL with Debian's stock kernel: its virtio drivers are modules,
-- so they must travel in the initramfs and be loaded before the agent starts.
local gondolin = require "gondolin"
local uv = require "luv"

local function stock()
  local base = os.getenv "XDG_CACHE_HOME"
  base = (base and base ~= "") and base or os.getenv "HOME" .. "/.cache"
  local f = io.open(base .. "/gondolin/stock/current")
  if not f then return nil end
  local kernel, modules = f:read("a"):match("^(%S+) (%S+)")
  f:close()
  return kernel, modules
end

describe("a stock Debian kernel", function()
  it("boots with its virtio modules and runs commands", function()
    local kernel, modules = stock()
    assert(kernel, "no stock kernel in the cache: run 'make stock-kernel'")
    uv.os_setenv("GONDOLIN_KERNEL", kernel)
    uv.os_setenv("GONDOLIN_MODULES", modules)
    local ok, err = pcall(function()
      local vm <close> = gondolin.vm { image = "minimal", boot_timeout = 120 }
      assert.equal(modules:match("([^/]+)$"), vm.info.kernel)
      local r = vm:exec "grep -c virtio /proc/modules; echo ok"
      assert.equal(0, r.code)
      assert.is_true(tonumber(r.stdout:match("^(%d+)")) >= 3)
      assert.matches("ok\n$", r.stdout)
    end)
    uv.os_unsetenv("GONDOLIN_KERNEL")
    uv.os_unsetenv("GONDOLIN_MODULES")
    assert(ok, err)
  end)
end)

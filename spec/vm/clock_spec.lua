-- The guest's wall clock: set from the host right after HELLO, set again
-- on request and when the host's clock jumps (resume from suspend, a step).
local gondolin = require "gondolin"

describe("guest clock", function()
  local vm

  local function guest_now()
    local r = assert(vm:exec { "/bin/date", "+%s" })
    return tonumber(r.stdout)
  end

  setup(function() vm = assert(gondolin.vm { image = "minimal" }) end)
  teardown(function() if vm then vm:close() end end)

  it("is the host's from boot", function()
    assert.is_true(math.abs(guest_now() - os.time()) <= 2)
  end)

  it("is set again by vm:sync_clock()", function()
    assert.equal(0, vm:exec({ "/bin/date", "-s", "@1609459200" }).code)   -- 2021-01-01
    assert.is_true(guest_now() < 1700000000)
    assert.is_true(vm:sync_clock())
    assert.is_true(math.abs(guest_now() - os.time()) <= 2)
  end)

  it("is set again when the host's clock jumps against its monotonic clock", function()
    assert.is_false(vm:_check_clock())          -- no jump: nothing sent
    assert.equal(0, vm:exec({ "/bin/date", "-s", "@1609459200" }).code)
    vm._clock_base = vm._clock_base - 30e9      -- as after 30 s of host suspend
    assert.is_true(vm:_check_clock())
    assert.is_true(math.abs(guest_now() - os.time()) <= 2)
    assert.is_false(vm:_check_clock())
  end)
end)

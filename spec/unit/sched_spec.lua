local sched = require "gondolin.sched"
local uv = require "luv"

describe("gondolin.sched", function()
  it("runs a task to completion and returns its results", function()
    local a, b = sched.run(function(x) return x + 1, "two" end, 1)
    assert.equal(2, a)
    assert.equal("two", b)
  end)

  it("re-raises a task's error with a traceback", function()
    local ok, err = pcall(sched.run, function() error("boom") end)
    assert.is_false(ok)
    assert.matches("boom", err)
    assert.matches("traceback", err)
  end)

  it("yields inside a task and drives the loop outside one", function()
    local order = {}
    sched.run(function()
      sched.spawn(function() sched.sleep(0.02) order[#order + 1] = "late" end)
      order[#order + 1] = "early"
      sched.sleep(0.05)
    end)
    assert.same({ "early", "late" }, order)
    local t0 = uv.hrtime()
    sched.sleep(0.02)   -- plain code: drives the loop
    assert.is_true(uv.hrtime() - t0 >= 15e6)
  end)

  it("delivers the values an event fired with, to every waiter", function()
    local ev = sched.event()
    local got = {}
    sched.run(function()
      for i = 1, 3 do sched.spawn(function() got[i] = select(2, sched.wait(ev)) end) end
      local t = uv.new_timer()
      t:start(5, 0, function() t:close() sched.fire(ev, "a", "b") end)
      assert.equal("a", (sched.wait(ev)))
    end)
    assert.same({ "b", "b", "b" }, got)
  end)

  it("times out a wait without firing the event", function()
    local ev = sched.event()
    local v, err, code = sched.wait(ev, 0.01)
    assert.is_nil(v)
    assert.equal("timeout", err)
    assert.equal("timeout", code)
    assert.is_false(ev.fired)
    sched.run(function() assert.equal("timeout", select(3, sched.wait(ev, 0.01))) end)
  end)

  it("reports a wait that nothing can complete instead of hanging", function()
    local ok, err = pcall(sched.wait, sched.event())
    assert.is_false(ok)
    assert.matches("deadlock", err)
  end)
end)

-- budget.lua: an instruction budget for user Lua on the hot path.
local budget = require "gondolin.budget"

describe("gondolin.budget.run", function()
  it("returns what the function returns within the budget", function()
    assert.same({ true, 3, "x" }, { budget.run(100000, nil, function(a, b) return a + b, "x" end, 1, 2) })
  end)

  it("passes errors on like pcall and xpcall", function()
    local ok, err, exhausted = budget.run(100000, nil, function() error("boom", 0) end)
    assert.same({ false, "boom" }, { ok, err })
    assert.is_nil(exhausted)
    ok, err = budget.run(100000, debug.traceback, function() error("boom") end)
    assert.is_false(ok)
    assert.matches("boom\nstack traceback:", err)
  end)

  it("stops an endless loop", function()
    local ok, err, exhausted = budget.run(50000, nil, function() while true do end end)
    assert.is_false(ok)
    assert.equal("instruction budget (50000 instructions)", err)
    assert.is_true(exhausted)
  end)

  it("stops a loop that catches the budget's own error", function()
    local caught = 0
    local ok, _, exhausted = budget.run(50000, debug.traceback, function()
      while true do
        if not pcall(function() while true do end end) then caught = caught + 1 end
      end
    end)
    assert.is_false(ok)
    assert.is_true(exhausted)
    assert.is_true(caught <= 1)
  end)

  it("counts only what runs: time spent yielded is free", function()
    local co = coroutine.wrap(function()
      return budget.run(20000, nil, function()
        for _ = 1, 5 do coroutine.yield("waiting") end
        return "done"
      end)
    end)
    for _ = 1, 5 do assert.equal("waiting", co()) end
    assert.same({ true, "done" }, { co() })
  end)

  it("leaves the coroutine's own hook as it was, and runs freely with false", function()
    local calls = 0
    local function mine() calls = calls + 1 end
    debug.sethook(mine, "", 100000)
    assert.is_true((budget.run(50000, nil, function() for _ = 1, 10 do end end)))
    assert.equal(mine, (debug.gethook()))
    debug.sethook()
    assert.is_true((budget.run(false, nil, function() local x = 0 for i = 1, 200000 do x = x + i end end)))
  end)
end)

describe("gondolin.budget.check", function()
  it("accepts nil (the default), false and instruction counts", function()
    assert.equal(budget.DEFAULT, budget.check("x", nil))
    assert.is_false(budget.check("x", false))
    assert.equal(5000000, budget.check("x", 5000000))
  end)

  it("refuses other values, naming the option and what is accepted", function()
    for _, v in ipairs { 0, -1, 1.5, "10", true, 10 } do
      assert.has_error(function() budget.check("vm option 'vfs_budget'", v) end,
        ("gondolin: vm option 'vfs_budget': expected an instruction count 1000..%d or false (no budget), got %s")
          :format(budget.MAX, tostring(v)))
    end
  end)
end)

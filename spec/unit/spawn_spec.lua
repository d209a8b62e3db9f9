-- core.spawn (csrc/vmm/spawn.c): a failure in the child reaches the caller
-- as the step that failed and its errno, and the child gets exactly the
-- descriptors it was given.
local core = require "gondolin.core"
local sched = require "gondolin.sched"
local uv = require "luv"

describe("core.spawn", function()
  it("names the failing step: exec of a missing program", function()
    local p, err, code = core.spawn({ "/nonexistent/qemu" }, {}, function() end)
    assert.is_nil(p)
    assert.equal("/nonexistent/qemu: exec: No such file or directory", err)
    assert.equal("ENOENT", code)
  end)

  it("hands over the chosen descriptors and closes the rest", function()
    local mine, theirs = core.socketpair()
    local ev = sched.event()
    local p = assert(core.spawn({ "/bin/sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' ' >&5" },
      { { 5, theirs } }, function(code) sched.fire(ev, code) end))
    core.close_fd(theirs)
    assert.equal(0, sched.wait(ev, 10))
    local pipe = uv.new_pipe(false)
    pipe:open(mine)
    local out = ""
    local done = sched.event()
    pipe:read_start(function(_, data) if data then out = out .. data else sched.fire(done) end end)
    sched.wait(done, 10)
    pipe:close()
    sched.flush()   -- a close pending at exit crashes luv's teardown
    -- 0-2 (/dev/null), 5, and the one ls opens to read the directory
    assert.matches("^0 1 2 3 5 $", out)
  end)
end)

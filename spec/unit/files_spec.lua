-- files.lua: atomic writes, tree removal and the scratch sweep.
local files = require "gondolin.files"
local uv = require "luv"

describe("files", function()
  it("writes atomically and leaves no temporary file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(files.mkdir_p(dir .. "/a/b"))
    assert(files.write_atomic(dir .. "/a/b/f", "one"))
    assert(files.write_atomic(dir .. "/a/b/f", "two"))
    assert.equal("two", files.read(dir .. "/a/b/f"))
    assert.same({ "f" }, files.list(dir .. "/a/b"))
    assert(files.rm_tree(dir))
    assert.is_false(files.exists(dir))
    assert.is_true(files.rm_tree(dir))          -- nothing there: fine
  end)

  it("removes trees without following symlinks out of them", function()
    local dir, outside = os.tmpname(), os.tmpname()
    os.remove(dir)
    assert(files.mkdir_p(dir .. "/sub"))
    assert(files.write_atomic(outside, "keep me"))
    assert(uv.fs_symlink(outside, dir .. "/sub/link"))
    assert(files.rm_tree(dir))
    assert.equal("keep me", files.read(outside))
    os.remove(outside)
  end)

  it("hashes files and strings with sha256", function()
    local path = os.tmpname()
    assert(files.write_atomic(path, "abc"))
    local abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert.equal(abc, files.sha256(path))
    assert.equal(abc, files.sha256_string("abc"))
    assert(files.write_atomic(path, "abcd"))
    assert.are_not.equal(abc, files.sha256(path))   -- the memo notices the change
    os.remove(path)
    assert.is_nil(files.sha256(path))
  end)

  it("sweeps scratch entries whose owner is gone and keeps live ones", function()
    local mine = files.scratch("overlay", ".qcow2")
    assert(files.write_atomic(mine, "live"))
    local dir = files.scratch_dir()
    -- pid 1 is alive but started at another time: that owner is gone
    local dead_file = dir .. "/overlay-1-999999999-1.qcow2"
    local dead_dir = dir .. "/build-999999-1-1"
    assert(files.write_atomic(dead_file, "stale"))
    assert(files.mkdir_p(dead_dir .. "/tree/etc"))
    assert(files.write_atomic(dead_dir .. "/tree/etc/x", "stale"))
    assert(files.write_atomic(dir .. "/unrelated-name", "not ours to judge"))
    assert.is_true(files.sweep() >= 2)
    assert.is_false(files.exists(dead_file))
    assert.is_false(files.exists(dead_dir))
    assert.is_true(files.exists(mine))
    assert.is_true(files.exists(dir .. "/unrelated-name"))
    os.remove(mine)
    os.remove(dir .. "/unrelated-name")
  end)

  it("runs exit cleanups once, and not the cancelled ones", function()
    local ran = {}
    files.on_exit(function() ran[#ran + 1] = "a" end)
    local t = files.on_exit(function() ran[#ran + 1] = "b" end)
    files.on_exit(function() error("ignored") end)
    files.cancel(t)
    files.run_exit_cleanups()
    files.run_exit_cleanups()
    assert.same({ "a" }, ran)
  end)
end)

-- vfs/memory.lua: the in-memory provider, method by method, with its
-- limits, hard links, rename's edge cases and block-wise data.
local memory = require "gondolin.vfs.memory"
local uv = require "luv"

local function now()
  local s, us = uv.gettimeofday()
  return s + (us or 0) / 1e6
end

--- Assert that a call failed with exactly nil, code.
local function fails(code, ...)
  local n = select("#", ...)
  local v, err = ...
  assert.equal(2, n)
  assert.is_nil(v)
  assert.equal(code, err)
end

--- A provider holding /d (dir), /d/f (file "hello"), /l -> "d/f".
local function tree(opts)
  local p = memory.new(opts)
  assert.is_true(p:mkdir("/d", 0x1ed))
  assert.is_true(p:create("/d/f", 0x1a4))
  assert.equal(5, p:write("/d/f", 0, "hello"))
  assert.is_true(p:symlink("d/f", "/l"))
  return p
end

describe("gondolin.vfs.memory.new", function()
  it("returns a plain table of methods that names itself", function()
    local p = memory.new()
    assert.equal("table", type(p))
    assert.equal("memory", p.name)
    assert.equal("memory", p.__name)
    assert.is_nil(getmetatable(p))
    for _, m in ipairs { "getattr", "readdir", "read", "write", "create", "truncate", "mkdir",
                         "rmdir", "unlink", "rename", "symlink", "readlink", "link", "chmod",
                         "chown", "utimens", "statfs", "fsync" } do
      assert.equal("function", type(rawget(p, m)), m)
    end
  end)

  it("gives each provider its own tree", function()
    local a, b = memory.new(), memory.new {}
    assert.is_true(a:create("/x"))
    fails("ENOENT", b:getattr("/x"))
  end)

  it("refuses bad options, naming the option and what is accepted", function()
    local cases = {
      { "x", "options must be a table, got string" },
      { { max_bytes = 0 }, "option 'max_bytes' must be a positive integer, got 0" },
      { { max_bytes = -1 }, "option 'max_bytes' must be a positive integer, got %-1" },
      { { max_bytes = 1.5 }, "option 'max_bytes' must be a positive integer, got 1.5" },
      { { max_bytes = "1G" }, "option 'max_bytes' must be a positive integer, got 1G" },
      { { max_bytes = math.huge }, "option 'max_bytes' must be a positive integer, got inf" },
      { { max_nodes = 0 }, "option 'max_nodes' must be a positive integer, got 0" },
      { { max_nodes = true }, "option 'max_nodes' must be a positive integer, got true" },
      { { max_size = 1 }, "unknown option 'max_size' %(accepted: max_bytes, max_nodes%)" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(function() local p = memory.new(c[1]) return p end)
      assert.is_false(ok)
      assert.matches("^[^:]*memory_spec.lua:%d+: gondolin%.vfs%.memory: " .. c[2] .. "$", err)
    end
  end)

  it("accepts integral floats as limits", function()
    local p = memory.new { max_bytes = 8192.0, max_nodes = 3.0 }
    local st = p:statfs("/")
    assert.equal(2, st.blocks)
    assert.equal(3, st.files)
    assert.equal("integer", math.type(st.files))
  end)

  it("raises on a path that is not an absolute string", function()
    local p = memory.new()
    assert.has_error(function() p:getattr("relative") end)
    assert.has_error(function() p:getattr(nil) end)
    assert.has_error(function() p:create(42) end)
    assert.has_error(function() p:rename("/a", nil) end)
    assert.has_error(function() p:link("/a", "b") end)
    local ok, err = pcall(function() local v = p:readdir("d") return v end)
    assert.is_false(ok)
    assert.matches("memory_spec.lua:%d+: gondolin%.vfs%.memory: path must be an absolute string, got d$", err)
  end)
end)

describe("getattr", function()
  it("describes the root, a file, a directory and a symlink", function()
    local t0 = now()
    local p = tree()
    local root = p:getattr("/")
    assert.same({ "dir", 2, 0x1ed, 3, 0, 0, 1 },
      { root.type, root.size, root.mode, root.nlink, root.uid, root.gid, root.ino })
    local f = p:getattr("/d/f")
    assert.same({ "file", 5, 0x1a4, 1, 0, 0 }, { f.type, f.size, f.mode, f.nlink, f.uid, f.gid })
    local d = p:getattr("/d")
    assert.same({ "dir", 1, 0x1ed, 2 }, { d.type, d.size, d.mode, d.nlink })
    local l = p:getattr("/l")
    assert.same({ "symlink", 3, 0x1ff, 1 }, { l.type, l.size, l.mode, l.nlink })
    for _, a in ipairs { root, f, d, l } do
      for _, k in ipairs { "atime", "mtime", "ctime" } do
        assert.is_true(a[k] >= t0 - 1 and a[k] <= now() + 1, k)
      end
    end
  end)

  it("gives every node its own ino", function()
    local p = tree()
    local seen = {}
    for _, path in ipairs { "/", "/d", "/d/f", "/l" } do
      local ino = p:getattr(path).ino
      assert.is_nil(seen[ino])
      seen[ino] = true
    end
  end)

  it("counts subdirectories in nlink", function()
    local p = memory.new()
    assert.is_true(p:mkdir("/a"))
    assert.is_true(p:mkdir("/a/b"))
    assert.is_true(p:mkdir("/a/c"))
    assert.is_true(p:create("/a/f"))
    assert.equal(4, p:getattr("/a").nlink)
    assert.equal(3, p:getattr("/a").size)
    assert.equal(3, p:getattr("/").nlink)
  end)

  it("fails with ENOENT, ENOTDIR and ENAMETOOLONG", function()
    local p = tree()
    fails("ENOENT", p:getattr("/nope"))
    fails("ENOENT", p:getattr("/d/nope"))
    fails("ENOTDIR", p:getattr("/d/f/x"))
    fails("ENOTDIR", p:getattr("/l/x"))             -- a symlink is not walked through
    fails("ENAMETOOLONG", p:getattr("/" .. ("a"):rep(256)))
    fails("ENAMETOOLONG", p:getattr(("/aaaaaaa"):rep(512)))
  end)
end)

describe("readdir", function()
  it("lists names sorted, without . and ..", function()
    local p = memory.new()
    for _, n in ipairs { "b", "a", "c" } do assert.is_true(p:create("/" .. n)) end
    assert.is_true(p:mkdir("/e"))
    assert.same({ "a", "b", "c", "e" }, p:readdir("/"))
    assert.same({}, p:readdir("/e"))
  end)

  it("fails with ENOTDIR on a file or symlink and ENOENT when missing", function()
    local p = tree()
    fails("ENOTDIR", p:readdir("/d/f"))
    fails("ENOTDIR", p:readdir("/l"))
    fails("ENOENT", p:readdir("/x"))
  end)
end)

describe("read and write", function()
  it("reads what was written, shorter only at end of file", function()
    local p = tree()
    assert.equal("hello", p:read("/d/f", 0, 100))
    assert.equal("ell", p:read("/d/f", 1, 3))
    assert.equal("o", p:read("/d/f", 4, 10))
    assert.equal("", p:read("/d/f", 5, 10))
    assert.equal("", p:read("/d/f", 1000, 10))
    assert.equal("", p:read("/d/f", 0, 0))
    assert.equal(3, p:write("/d/f", 1, "ipp"))
    assert.equal("hippo", p:read("/d/f", 0, 5))
    assert.equal(0, p:write("/d/f", 100, ""))
    assert.equal(5, p:getattr("/d/f").size)    -- an empty write changes nothing
  end)

  it("fills a gap past the end with zero bytes", function()
    local p = tree()
    assert.equal(2, p:write("/d/f", 10, "xy"))
    assert.equal(12, p:getattr("/d/f").size)
    assert.equal("hello\0\0\0\0\0xy", p:read("/d/f", 0, 100))
  end)

  it("writes sparsely across blocks and reads zeros in the holes", function()
    local p = memory.new()
    assert.is_true(p:create("/s"))
    local far = 3 * 65536 + 100
    assert.equal(4, p:write("/s", far, "tail"))
    assert.equal(4, p:write("/s", 65534, "span"))     -- crosses a block boundary
    assert.equal(far + 4, p:getattr("/s").size)
    local all = p:read("/s", 0, far + 4)
    assert.equal(far + 4, #all)
    assert.equal(("\0"):rep(65534) .. "span" .. ("\0"):rep(far - 65538) .. "tail", all)
    assert.equal("pan\0", p:read("/s", 65535, 4))
    assert.equal((1024 ^ 3 - (far + 4)) // 4096, p:statfs("/").bfree)   -- counted by size
  end)

  it("writes 5 MiB in 128 KiB pieces at offsets and reads them back", function()
    local p = memory.new()
    assert.is_true(p:create("/big"))
    local chunk, pieces = 128 * 1024, {}
    for i = 0, 39 do
      local s = string.char(65 + i % 26):rep(chunk - 7) .. ("%07d"):format(i)
      pieces[i + 1] = s
      -- an odd start offset: every write straddles two blocks
      assert.equal(chunk, p:write("/big", 3 + i * chunk, s))
    end
    local want = "\0\0\0" .. table.concat(pieces)
    assert.equal(#want, p:getattr("/big").size)
    local got = {}
    for off = 0, #want - 1, 100000 do got[#got + 1] = p:read("/big", off, 100000) end
    assert.is_true(table.concat(got) == want)
    assert.is_true(p:read("/big", 0, #want) == want)
  end)

  it("writes 200 MiB in 128 KiB pieces", function()
    local p = memory.new()
    assert.is_true(p:create("/huge"))
    local chunk = ("z"):rep(128 * 1024)
    for i = 0, 1599 do assert.equal(#chunk, p:write("/huge", i * #chunk, chunk)) end
    assert.equal(200 * 1024 * 1024, p:getattr("/huge").size)
    assert.equal("zzzz", p:read("/huge", 200 * 1024 * 1024 - 4, 10))
    assert.is_true(p:unlink("/huge"))
  end)

  it("updates mtime and ctime on write", function()
    local p = tree()
    assert.is_true(p:utimens("/d/f", 1000, 1000))
    local before = p:getattr("/d/f")
    assert.equal(1, p:write("/d/f", 0, "j"))
    local after = p:getattr("/d/f")
    assert.equal(1000, after.atime)
    assert.is_true(after.mtime > 1000 and after.mtime >= before.ctime)
    assert.equal(after.mtime, after.ctime)
  end)

  it("fails with EISDIR on a directory, EINVAL on a symlink or bad numbers", function()
    local p = tree()
    fails("EISDIR", p:read("/d", 0, 1))
    fails("EISDIR", p:write("/d", 0, "x"))
    fails("EINVAL", p:read("/l", 0, 1))
    fails("EINVAL", p:write("/l", 0, "x"))
    fails("ENOENT", p:read("/nope", 0, 1))
    fails("ENOENT", p:write("/nope", 0, "x"))
    fails("ENOTDIR", p:write("/d/f/x", 0, "x"))
    fails("EINVAL", p:read("/d/f", -1, 1))
    fails("EINVAL", p:read("/d/f", 0, -1))
    fails("EINVAL", p:read("/d/f", 0.5, 1))
    fails("EINVAL", p:write("/d/f", -1, "x"))
    fails("EINVAL", p:write("/d/f", 0, 5))
  end)
end)

describe("create", function()
  it("makes an empty file with the mode's permission bits", function()
    local p = memory.new()
    assert.is_true(p:create("/f", 0x81ed))            -- S_IFREG | 0755
    local a = p:getattr("/f")
    assert.same({ "file", 0, 0x1ed, 1 }, { a.type, a.size, a.mode, a.nlink })
    assert.is_true(p:create("/g"))
    assert.equal(0x1a4, p:getattr("/g").mode)
  end)

  it("updates the parent's mtime", function()
    local p = memory.new()
    assert.is_true(p:utimens("/", 5, 5))
    assert.is_true(p:create("/f"))
    assert.is_true(p:getattr("/").mtime > 5)
  end)

  it("fails with EEXIST, ENOENT, ENOTDIR, ENAMETOOLONG and EINVAL", function()
    local p = tree()
    fails("EEXIST", p:create("/d/f"))
    fails("EEXIST", p:create("/d"))
    fails("EEXIST", p:create("/l"))
    fails("EEXIST", p:create("/"))
    fails("ENOENT", p:create("/nope/f"))
    fails("ENOTDIR", p:create("/d/f/g"))
    fails("ENOTDIR", p:create("/l/g"))
    fails("ENAMETOOLONG", p:create("/" .. ("n"):rep(256)))
    assert.is_true(p:create("/" .. ("n"):rep(255)))
    fails("EINVAL", p:create("/m", -1))
    fails("EINVAL", p:create("/m", "0644"))
    assert.equal("hello", p:read("/d/f", 0, 10))      -- EEXIST left it alone
  end)
end)

describe("truncate", function()
  it("shrinks and grows with zeros", function()
    local p = tree()
    assert.is_true(p:truncate("/d/f", 2))
    assert.equal("he", p:read("/d/f", 0, 10))
    assert.is_true(p:truncate("/d/f", 6))
    assert.equal("he\0\0\0\0", p:read("/d/f", 0, 10))
    assert.is_true(p:truncate("/d/f", 0))
    assert.equal("", p:read("/d/f", 0, 10))
    assert.equal(0, p:getattr("/d/f").size)
  end)

  it("cuts inside a block and across blocks, then reads zeros after growing", function()
    local p = memory.new()
    assert.is_true(p:create("/f"))
    local data = ("abcdefgh"):rep(3 * 65536 // 8)
    assert.equal(#data, p:write("/f", 0, data))
    assert.is_true(p:truncate("/f", 65536 + 3))
    assert.is_true(p:truncate("/f", 3 * 65536))
    assert.equal(data:sub(1, 65539) .. ("\0"):rep(2 * 65536 - 3), p:read("/f", 0, 3 * 65536))
    assert.is_true(p:truncate("/f", 65536))            -- exactly a block boundary
    assert.is_true(p:truncate("/f", 65540))
    assert.equal(data:sub(65533, 65536) .. "\0\0\0\0", p:read("/f", 65532, 100))
  end)

  it("updates mtime and ctime", function()
    local p = tree()
    assert.is_true(p:utimens("/d/f", 7, 7))
    assert.is_true(p:truncate("/d/f", 1))
    local a = p:getattr("/d/f")
    assert.equal(7, a.atime)
    assert.is_true(a.mtime > 7)
  end)

  it("fails with EISDIR, EINVAL and ENOENT", function()
    local p = tree()
    fails("EISDIR", p:truncate("/d", 0))
    fails("EINVAL", p:truncate("/l", 0))
    fails("EINVAL", p:truncate("/d/f", -1))
    fails("ENOENT", p:truncate("/x", 0))
  end)
end)

describe("mkdir and rmdir", function()
  it("makes and removes directories", function()
    local p = memory.new()
    assert.is_true(p:mkdir("/a", 0x41c0))             -- S_IFDIR | 0700
    assert.equal(0x1c0, p:getattr("/a").mode)
    assert.is_true(p:mkdir("/a/b"))
    assert.equal(0x1ed, p:getattr("/a/b").mode)
    fails("ENOTEMPTY", p:rmdir("/a"))
    assert.is_true(p:rmdir("/a/b"))
    assert.is_true(p:rmdir("/a"))
    fails("ENOENT", p:getattr("/a"))
    assert.same({}, p:readdir("/"))
    assert.equal(2, p:getattr("/").nlink)
  end)

  it("fails with EEXIST, ENOENT, ENOTDIR and EINVAL", function()
    local p = tree()
    fails("EEXIST", p:mkdir("/d"))
    fails("EEXIST", p:mkdir("/d/f"))
    fails("EEXIST", p:mkdir("/"))
    fails("ENOENT", p:mkdir("/x/y"))
    fails("ENOTDIR", p:mkdir("/d/f/y"))
    fails("EINVAL", p:mkdir("/m", 1.5))
    fails("ENOTDIR", p:rmdir("/d/f"))
    fails("ENOTDIR", p:rmdir("/l"))
    fails("ENOENT", p:rmdir("/x"))
    fails("EINVAL", p:rmdir("/"))
  end)
end)

describe("unlink", function()
  it("removes files and symlinks and gives their bytes back", function()
    local p = tree { max_bytes = 4096 * 4 }
    local free = p:statfs("/").ffree
    assert.equal(3, p:statfs("/").bfree)
    assert.is_true(p:unlink("/d/f"))
    assert.is_true(p:unlink("/l"))
    assert.same({}, p:readdir("/d"))
    assert.same({ "d" }, p:readdir("/"))
    assert.equal(free + 2, p:statfs("/").ffree)
    assert.equal(4, p:statfs("/").bfree)
  end)

  it("fails with EISDIR on a directory and ENOENT when missing", function()
    local p = tree()
    fails("EISDIR", p:unlink("/d"))
    fails("EISDIR", p:unlink("/"))
    fails("ENOENT", p:unlink("/d/nope"))
    fails("ENOTDIR", p:unlink("/d/f/x"))
  end)
end)

describe("symlink and readlink", function()
  it("stores the target verbatim and never resolves it", function()
    local p = memory.new()
    for i, t in ipairs { "/etc/passwd", "../../x", "nowhere", "a//b/./" } do
      assert.is_true(p:symlink(t, "/s" .. i))
      assert.equal(t, p:readlink("/s" .. i))
      assert.equal(#t, p:getattr("/s" .. i).size)
    end
  end)

  it("fails with EEXIST, ENOENT, EINVAL and ENAMETOOLONG", function()
    local p = tree()
    fails("EEXIST", p:symlink("x", "/l"))
    fails("EEXIST", p:symlink("x", "/d"))
    fails("ENOENT", p:symlink("x", "/nope/l"))
    fails("ENOTDIR", p:symlink("x", "/d/f/l"))
    fails("EINVAL", p:symlink("", "/e"))
    fails("ENAMETOOLONG", p:symlink(("t"):rep(4096), "/e"))
    fails("EINVAL", p:readlink("/d/f"))
    fails("EINVAL", p:readlink("/d"))
    fails("ENOENT", p:readlink("/nope"))
  end)
end)

describe("link", function()
  it("shares one node under two names", function()
    local p = tree()
    assert.is_true(p:link("/d/f", "/g"))
    local a, b = p:getattr("/d/f"), p:getattr("/g")
    assert.equal(a.ino, b.ino)
    assert.equal(2, a.nlink)
    assert.equal(2, b.nlink)
    assert.equal(3, p:write("/g", 5, "!!!"))
    assert.equal("hello!!!", p:read("/d/f", 0, 100))
    assert.is_true(p:chmod("/d/f", 0x180))
    assert.equal(0x180, p:getattr("/g").mode)
  end)

  it("keeps the data for the other name after one is unlinked", function()
    local p = tree { max_bytes = 4096 + 8 }           -- "hello" and "d/f" use 8
    assert.equal(1, p:statfs("/").bfree)
    assert.is_true(p:link("/d/f", "/g"))
    assert.equal(1, p:statfs("/").bfree)              -- one node, counted once
    assert.equal(1, p:write("/g", 5, "!"))
    assert.equal(0, p:statfs("/").bfree)
    assert.is_true(p:unlink("/d/f"))
    assert.equal("hello!", p:read("/g", 0, 10))
    assert.equal(1, p:getattr("/g").nlink)
    assert.equal(0, p:statfs("/").bfree)              -- the data stays for /g
    fails("ENOENT", p:getattr("/d/f"))
    assert.is_true(p:unlink("/g"))
    assert.equal(1, p:statfs("/").bfree)              -- its 6 bytes back
  end)

  it("links symlinks too", function()
    local p = tree()
    assert.is_true(p:link("/l", "/l2"))
    assert.equal("d/f", p:readlink("/l2"))
    assert.equal(2, p:getattr("/l").nlink)
  end)

  it("fails with EPERM on a directory, EEXIST, ENOENT and ENOTDIR", function()
    local p = tree()
    fails("EPERM", p:link("/d", "/d2"))
    fails("EPERM", p:link("/", "/r"))
    fails("EEXIST", p:link("/d/f", "/l"))
    fails("EEXIST", p:link("/d/f", "/"))
    fails("ENOENT", p:link("/nope", "/x"))
    fails("ENOENT", p:link("/d/f", "/nope/x"))
    fails("ENOTDIR", p:link("/d/f", "/d/f/x"))
    assert.equal(1, p:getattr("/d/f").nlink)
  end)
end)

describe("rename", function()
  it("moves a file, keeping its node", function()
    local p = tree()
    local ino = p:getattr("/d/f").ino
    assert.is_true(p:rename("/d/f", "/g"))
    fails("ENOENT", p:getattr("/d/f"))
    assert.equal(ino, p:getattr("/g").ino)
    assert.equal("hello", p:read("/g", 0, 10))
    assert.same({ "d", "g", "l" }, p:readdir("/"))
    assert.same({}, p:readdir("/d"))
  end)

  it("moves a directory with its contents and keeps nlink right", function()
    local p = tree()
    assert.is_true(p:mkdir("/e"))
    assert.is_true(p:rename("/d", "/e/d2"))
    assert.equal("hello", p:read("/e/d2/f", 0, 10))
    assert.equal(3, p:getattr("/e").nlink)
    assert.equal(3, p:getattr("/").nlink)
    fails("ENOTEMPTY", p:rmdir("/e/d2"))
  end)

  it("replaces an existing file, which loses a link", function()
    local p = tree()
    assert.is_true(p:create("/g"))
    assert.is_true(p:link("/g", "/g2"))
    local free = p:statfs("/").ffree
    assert.is_true(p:rename("/d/f", "/g"))
    assert.equal("hello", p:read("/g", 0, 10))
    assert.equal(1, p:getattr("/g2").nlink)
    assert.equal(0, p:getattr("/g2").size)
    assert.equal(free + 1, p:statfs("/").ffree)
  end)

  it("replaces a symlink by a file and an empty directory by a directory", function()
    local p = tree()
    assert.is_true(p:rename("/d/f", "/l"))
    assert.equal("file", p:getattr("/l").type)
    assert.is_true(p:mkdir("/e"))
    assert.is_true(p:create("/d/g"))
    assert.is_true(p:rename("/d", "/e"))
    fails("ENOENT", p:getattr("/d"))
    assert.same({ "g" }, p:readdir("/e"))
    assert.equal(3, p:getattr("/").nlink)
  end)

  it("is a no-op onto itself or another link of the same node", function()
    local p = tree()
    assert.is_true(p:rename("/d/f", "/d/f"))
    assert.is_true(p:rename("/d", "/d"))
    assert.is_true(p:link("/d/f", "/g"))
    assert.is_true(p:rename("/d/f", "/g"))
    assert.equal(2, p:getattr("/g").nlink)
    assert.equal("hello", p:read("/d/f", 0, 10))
  end)

  it("fails like rename(2): ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, ENOENT", function()
    local p = tree()
    assert.is_true(p:mkdir("/e"))
    assert.is_true(p:create("/e/x"))
    assert.is_true(p:mkdir("/empty"))
    fails("ENOTEMPTY", p:rename("/d", "/e"))
    fails("ENOTDIR", p:rename("/d", "/e/x"))
    fails("ENOTDIR", p:rename("/empty", "/l"))
    fails("EISDIR", p:rename("/d/f", "/empty"))
    fails("EINVAL", p:rename("/d", "/d/sub"))
    fails("ENOTDIR", p:rename("/d", "/d/f/deeper"))   -- the lookup fails first
    assert.is_true(p:mkdir("/d/sub"))
    fails("EINVAL", p:rename("/d", "/d/sub"))         -- an empty dir, but inside
    fails("EINVAL", p:rename("/d", "/d/sub/x"))
    assert.is_true(p:rmdir("/d/sub"))
    fails("EINVAL", p:rename("/", "/x"))
    fails("ENOENT", p:rename("/nope", "/x"))
    fails("ENOENT", p:rename("/d/f", "/nope/x"))
    fails("ENOTDIR", p:rename("/d/f/x", "/y"))
    fails("ENOTDIR", p:rename("/d/f", "/l/y"))
    -- nothing moved
    assert.same({ "d", "e", "empty", "l" }, p:readdir("/"))
    assert.same({ "f" }, p:readdir("/d"))
    assert.same({ "x" }, p:readdir("/e"))
  end)

  it("lets a directory move to a sibling named like its prefix", function()
    local p = tree()
    assert.is_true(p:rename("/d", "/dd"))             -- /dd is not inside /d
    assert.equal("hello", p:read("/dd/f", 0, 10))
  end)
end)

describe("chmod, chown and utimens", function()
  it("changes the mode's permission bits and ctime", function()
    local p = tree()
    assert.is_true(p:utimens("/d/f", 1, 1))
    local c0 = p:getattr("/d/f").ctime
    assert.is_true(p:chmod("/d/f", 0x8fff))
    local a = p:getattr("/d/f")
    assert.equal(0xfff, a.mode)
    assert.is_true(a.ctime >= c0)
    assert.equal(1, a.mtime)
    fails("ENOENT", p:chmod("/x", 0))
    fails("EINVAL", p:chmod("/d/f", nil))
  end)

  it("changes owner and group, nil leaving one unchanged", function()
    local p = tree()
    assert.is_true(p:chown("/d/f", 1000, 100))
    assert.same({ 1000, 100 }, { p:getattr("/d/f").uid, p:getattr("/d/f").gid })
    assert.is_true(p:chown("/d/f", nil, 5))
    assert.same({ 1000, 5 }, { p:getattr("/d/f").uid, p:getattr("/d/f").gid })
    assert.is_true(p:chown("/d/f", 7, nil))
    assert.same({ 7, 5 }, { p:getattr("/d/f").uid, p:getattr("/d/f").gid })
    assert.is_true(p:chown("/l", 3, 3))
    assert.equal(3, p:getattr("/l").uid)
    fails("ENOENT", p:chown("/x", 1, 1))
    fails("EINVAL", p:chown("/d/f", -1, 1))
    fails("EINVAL", p:chown("/d/f", 1, "root"))
  end)

  it("sets times in seconds or now, nil leaving one unchanged", function()
    local p = tree()
    assert.is_true(p:utimens("/d/f", 1.5, 2.25))
    local a = p:getattr("/d/f")
    assert.same({ 1.5, 2.25 }, { a.atime, a.mtime })
    assert.is_true(a.ctime > 1000)
    assert.is_true(p:utimens("/d/f", nil, 9))
    assert.same({ 1.5, 9 }, { p:getattr("/d/f").atime, p:getattr("/d/f").mtime })
    assert.is_true(p:utimens("/d/f", 4, nil))
    assert.same({ 4, 9 }, { p:getattr("/d/f").atime, p:getattr("/d/f").mtime })
    local t0 = now()
    assert.is_true(p:utimens("/d/f", "now", "now"))
    a = p:getattr("/d/f")
    assert.is_true(a.atime >= t0 - 1 and a.atime <= now() + 1)
    assert.equal(a.atime, a.mtime)
    fails("ENOENT", p:utimens("/x", 1, 1))
    fails("EINVAL", p:utimens("/d/f", "later", 1))
    fails("EINVAL", p:utimens("/d/f", 1, 0 / 0))
  end)
end)

describe("statfs and fsync", function()
  it("reports the limits and what is used", function()
    local p = memory.new { max_bytes = 40960, max_nodes = 10 }
    assert.same({ bsize = 4096, blocks = 10, bfree = 10, bavail = 10, files = 10, ffree = 10,
                  namelen = 255 }, p:statfs("/"))
    assert.is_true(p:create("/f"))
    assert.equal(4097, p:write("/f", 0, ("x"):rep(4097)))
    assert.is_true(p:mkdir("/d"))
    local st = p:statfs("/d")
    assert.same({ 8, 8, 8 }, { st.bfree, st.bavail, st.ffree })
    fails("ENOENT", p:statfs("/nope"))
  end)

  it("has the default limits: 1 GiB and 100000 names", function()
    local st = memory.new():statfs("/")
    assert.equal(1024 * 1024 * 1024 // 4096, st.blocks)
    assert.equal(100000, st.files)
  end)

  it("syncs what exists", function()
    local p = tree()
    assert.is_true(p:fsync("/d/f"))
    assert.is_true(p:fsync("/d"))
    fails("ENOENT", p:fsync("/x"))
  end)
end)

describe("limits", function()
  it("refuses a write or truncate past max_bytes with ENOSPC", function()
    local p = memory.new { max_bytes = 100 }
    assert.is_true(p:create("/a"))
    assert.is_true(p:create("/b"))
    assert.equal(60, p:write("/a", 0, ("a"):rep(60)))
    fails("ENOSPC", p:write("/b", 0, ("b"):rep(41)))
    assert.equal(40, p:write("/b", 0, ("b"):rep(40)))
    fails("ENOSPC", p:write("/b", 40, "x"))
    assert.equal(10, p:write("/a", 50, ("c"):rep(10)))  -- overwriting costs nothing
    fails("ENOSPC", p:truncate("/a", 61))
    fails("ENOSPC", p:write("/a", math.maxinteger - 1, "xx"))  -- no overflow
    fails("ENOSPC", p:truncate("/a", math.maxinteger))
    assert.equal(60, p:getattr("/a").size)
    assert.is_true(p:truncate("/a", 10))
    assert.equal(50, p:write("/b", 40, ("b"):rep(50)))
    fails("ENOSPC", p:symlink("t", "/s"))             -- targets count too
    assert.is_true(p:unlink("/b"))
    assert.is_true(p:symlink("t", "/s"))
  end)

  it("counts a sparse file by its size", function()
    local p = memory.new { max_bytes = 1000 }
    assert.is_true(p:create("/a"))
    assert.equal(1, p:write("/a", 998, "x"))
    assert.is_true(p:create("/b"))
    fails("ENOSPC", p:write("/b", 0, "yy"))
    assert.is_true(p:truncate("/a", 1000))
    fails("ENOSPC", p:truncate("/b", 1))
  end)

  it("refuses new names past max_nodes with ENOSPC", function()
    local p = memory.new { max_nodes = 4 }
    assert.is_true(p:mkdir("/d"))
    assert.is_true(p:create("/d/f"))
    assert.is_true(p:symlink("x", "/s"))
    assert.is_true(p:link("/d/f", "/g"))
    fails("ENOSPC", p:create("/h"))
    fails("ENOSPC", p:mkdir("/e"))
    fails("ENOSPC", p:symlink("x", "/t"))
    fails("ENOSPC", p:link("/d/f", "/h"))
    fails("EEXIST", p:create("/g"))                   -- EEXIST comes first
    assert.is_true(p:rename("/g", "/d/f2"))           -- a move needs no new name
    assert.is_true(p:rename("/d/f2", "/d/f"))         -- links of one node: no-op
    assert.equal(0, p:statfs("/").ffree)
    assert.is_true(p:rename("/d/f2", "/s"))           -- replacing frees one
    assert.equal(1, p:statfs("/").ffree)
    assert.is_true(p:create("/h"))
    assert.is_true(p:unlink("/h"))
    assert.is_true(p:unlink("/s"))
    assert.is_true(p:unlink("/d/f"))
    assert.is_true(p:rmdir("/d"))
    assert.equal(4, p:statfs("/").ffree)
  end)

  it("refuses a link past LINK_MAX with EMLINK", function()
    local p = memory.new()
    assert.is_true(p:create("/f"))
    local n = 1
    while n < 65000 do
      assert.is_true(p:link("/f", "/l" .. n))
      n = n + 1
    end
    assert.equal(65000, p:getattr("/f").nlink)
    fails("EMLINK", p:link("/f", "/one_more"))
  end)
end)

describe("times", function()
  local real, clock = uv.gettimeofday, 0
  before_each(function()
    clock = 1000
    uv.gettimeofday = function() return clock, 250000 end   -- the module calls it per use
  end)
  after_each(function() uv.gettimeofday = real end)

  --- { atime, mtime, ctime } of path
  local function times(p, path)
    local a = p:getattr(path)
    return { a.atime, a.mtime, a.ctime }
  end

  it("stamps new nodes and their parent with now, in fractional seconds", function()
    local p = memory.new()
    assert.same({ 1000.25, 1000.25, 1000.25 }, times(p, "/"))
    clock = 1001
    assert.is_true(p:mkdir("/d"))
    assert.same({ 1001.25, 1001.25, 1001.25 }, times(p, "/d"))
    assert.same({ 1000.25, 1001.25, 1001.25 }, times(p, "/"))
    clock = 1002
    assert.is_true(p:symlink("x", "/d/s"))
    assert.same({ 1002.25, 1002.25, 1002.25 }, times(p, "/d/s"))
    assert.same({ 1001.25, 1002.25, 1002.25 }, times(p, "/d"))
  end)

  it("changes ctime alone on chmod, chown and link, and the parent's on unlink", function()
    local p = memory.new()
    assert.is_true(p:create("/f"))
    clock = 1001
    assert.is_true(p:chmod("/f", 0x180))
    assert.same({ 1000.25, 1000.25, 1001.25 }, times(p, "/f"))
    clock = 1002
    assert.is_true(p:chown("/f", 1, nil))
    assert.same({ 1000.25, 1000.25, 1002.25 }, times(p, "/f"))
    clock = 1003
    assert.is_true(p:link("/f", "/g"))
    assert.same({ 1000.25, 1000.25, 1003.25 }, times(p, "/f"))
    clock = 1004
    assert.is_true(p:unlink("/f"))
    assert.same({ 1000.25, 1000.25, 1004.25 }, times(p, "/g"))
    assert.same({ 1000.25, 1004.25, 1004.25 }, times(p, "/"))
  end)

  it("changes mtime and ctime on write and truncate, not atime on read", function()
    local p = memory.new()
    assert.is_true(p:create("/f"))
    clock = 1001
    assert.equal(1, p:write("/f", 0, "x"))
    assert.same({ 1000.25, 1001.25, 1001.25 }, times(p, "/f"))
    clock = 1002
    assert.equal("x", p:read("/f", 0, 1))
    assert.same({ 1000.25, 1001.25, 1001.25 }, times(p, "/f"))
    assert.is_true(p:truncate("/f", 0))
    assert.same({ 1000.25, 1002.25, 1002.25 }, times(p, "/f"))
  end)

  it("sets ctime to now on utimens, whatever times it sets", function()
    local p = memory.new()
    assert.is_true(p:create("/f"))
    clock = 1005
    assert.is_true(p:utimens("/f", 3, "now"))
    assert.same({ 3, 1005.25, 1005.25 }, times(p, "/f"))
    clock = 1006
    assert.is_true(p:utimens("/f", nil, nil))
    assert.same({ 3, 1005.25, 1006.25 }, times(p, "/f"))
  end)

  it("changes the moved node's ctime and both parents' mtime on rename", function()
    local p = memory.new()
    assert.is_true(p:mkdir("/a"))
    assert.is_true(p:mkdir("/b"))
    assert.is_true(p:create("/a/f"))
    clock = 1007
    assert.is_true(p:rename("/a/f", "/b/f"))
    assert.same({ 1000.25, 1000.25, 1007.25 }, times(p, "/b/f"))
    assert.same({ 1000.25, 1007.25, 1007.25 }, times(p, "/a"))
    assert.same({ 1000.25, 1007.25, 1007.25 }, times(p, "/b"))
    assert.same({ 1000.25, 1000.25, 1000.25 }, times(p, "/"))
  end)
end)

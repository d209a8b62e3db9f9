-- One suite, four providers: realfs (openat2), realfs (component walk),
-- memory, and a plain Lua table delegating to memory. Each runs through the
-- server a VM uses (vfs.server + Server:request), no VM.
local vfs = require "gondolin.vfs"
local uv = require "luv"

local S_IFMT, S_IFREG, S_IFDIR, S_IFLNK = 0xf000, 0x8000, 0x4000, 0xa000

local function tmpdir()
  local d = assert(uv.fs_mkdtemp("/tmp/gondolin-prov-XXXXXX"))
  return d
end

local function rm_rf(path)
  os.execute("rm -rf '" .. path .. "'")
end

--- A plain table whose methods forward to a memory provider: a provider
-- written by a user, nothing but functions in a table.
local function lua_table()
  local mem = vfs.memory()
  local p = { name = "forwarder" }
  for _, m in ipairs { "getattr", "readdir", "read", "write", "create", "truncate", "mkdir",
                       "rmdir", "unlink", "rename", "symlink", "readlink", "link", "chmod",
                       "chown", "utimens", "statfs", "fsync" } do
    p[m] = function(_, ...) return mem[m](mem, ...) end
  end
  return p
end

local PROVIDERS = {
  { "realfs", function(dir) return vfs.realfs(dir) end },
  { "realfs (component walk)", function(dir) return vfs.realfs(dir, { walk = true }) end },
  { "memory", function() return vfs.memory() end },
  { "a Lua table", function() return lua_table() end },
}

local function fails(code, ...)
  local r, err = ...
  assert.is_nil(r)
  assert.equal(code, err)
end

for _, prov in ipairs(PROVIDERS) do
  local name, make = prov[1], prov[2]

  describe("vfs provider " .. name, function()
    local dir, srv

    local function at(path) return path == "/" and "/w" or "/w" .. path end

    -- a request on a path inside the mount; a "to" inside it too
    local function req(op, path, fields)
      if fields and fields.to and fields.to:sub(1, 7) ~= "/other/" then
        fields.to = at(fields.to)
      end
      return srv:request(op, at(path), fields)
    end

    local function create(path, data, mode)
      local r = assert(req("create", path, { access = "rdwr", mode = mode or 420 }))
      if data then
        local w = assert(req("write", path, { fh = r.fh, offset = 0, data = data }))
        assert.equal(#data, w.size)
      end
      assert(req("release", path, { fh = r.fh }))
      return r
    end

    local function read_all(path)
      local o = assert(req("open", path, { access = "read" }))
      local chunks, off = {}, 0
      while true do
        local r = assert(req("read", path, { fh = o.fh, offset = off, size = 65536 }))
        if #r.data == 0 then break end
        chunks[#chunks + 1] = r.data
        off = off + #r.data
      end
      assert(req("release", path, { fh = o.fh }))
      return table.concat(chunks)
    end

    local function names(path)
      local r = assert(req("readdir", path, { offset = 0 }))
      local out = {}
      for _, e in ipairs(r.entries) do
        if e[1] ~= "." and e[1] ~= ".." then out[#out + 1] = e[1] end
      end
      table.sort(out)
      return out
    end

    before_each(function()
      dir = tmpdir()
      srv = vfs.server(vfs.check_mounts { ["/w"] = make(dir), ["/other"] = vfs.memory() })
    end)

    after_each(function()
      srv:close()
      rm_rf(dir)
    end)

    it("starts as an empty directory", function()
      local a = assert(req("getattr", "/")).attr
      assert.equal(S_IFDIR, a.mode & S_IFMT)
      assert.same({}, names("/"))
    end)

    it("creates, writes and reads back a file, short at EOF", function()
      create("/f", "hello world")
      local a = assert(req("getattr", "/f")).attr
      assert.equal(S_IFREG, a.mode & S_IFMT)
      assert.equal(11, a.size)
      assert.equal(420, a.mode & 0xfff)
      local o = assert(req("open", "/f", { access = "read" }))
      assert.equal("world", assert(req("read", "/f", { fh = o.fh, offset = 6, size = 100 })).data)
      assert.equal("", assert(req("read", "/f", { fh = o.fh, offset = 11, size = 10 })).data)
      assert.equal("", assert(req("read", "/f", { fh = o.fh, offset = 1000, size = 10 })).data)
      assert(req("release", "/f", { fh = o.fh }))
    end)

    it("writes at offsets, leaving a hole of zeros", function()
      create("/f", "ab")
      local o = assert(req("open", "/f", { access = "rdwr" }))
      assert.equal(2, assert(req("write", "/f", { fh = o.fh, offset = 6, data = "cd" })).size)
      assert(req("release", "/f", { fh = o.fh }))
      assert.equal("ab\0\0\0\0cd", read_all("/f"))
    end)

    it("keeps binary data and large files intact", function()
      local parts = {}
      for i = 0, 255 do parts[#parts + 1] = string.char(i):rep(1031) end
      local data = table.concat(parts):rep(3)
      local r = assert(req("create", "/bin", { access = "rdwr" }))
      local off = 0
      while off < #data do
        local chunk = data:sub(off + 1, off + 131072)
        assert.equal(#chunk, assert(req("write", "/bin", { fh = r.fh, offset = off, data = chunk })).size)
        off = off + #chunk
      end
      assert(req("release", "/bin", { fh = r.fh }))
      assert.equal(#data, assert(req("getattr", "/bin")).attr.size)
      assert.equal(data, read_all("/bin"))
    end)

    it("appends at the end whatever the offset", function()
      create("/log", "one\n")
      local o = assert(req("open", "/log", { access = "write", append = true }))
      assert(req("write", "/log", { fh = o.fh, offset = 0, data = "two\n", append = true }))
      assert(req("release", "/log", { fh = o.fh }))
      assert.equal("one\ntwo\n", read_all("/log"))
    end)

    it("truncates on open with trunc and by setattr size", function()
      create("/t", "0123456789")
      local o = assert(req("open", "/t", { access = "write", trunc = true }))
      assert(req("release", "/t", { fh = o.fh }))
      assert.equal(0, assert(req("getattr", "/t")).attr.size)
      create("/u", "0123456789")
      assert.equal(4, assert(req("setattr", "/u", { size = 4 })).attr.size)
      assert.equal("0123", read_all("/u"))
      assert.equal(8, assert(req("setattr", "/u", { size = 8 })).attr.size)
      assert.equal("0123\0\0\0\0", read_all("/u"))
    end)

    it("refuses an exclusive create of an existing name, truncates a plain one if asked", function()
      create("/e", "data")
      fails("EEXIST", req("create", "/e", { access = "rdwr", excl = true }))
      local r = assert(req("create", "/e", { access = "rdwr", trunc = true }))
      assert(req("release", "/e", { fh = r.fh }))
      assert.equal(0, assert(req("getattr", "/e")).attr.size)
    end)

    it("answers ENOENT for what is not there", function()
      fails("ENOENT", req("getattr", "/nope"))
      fails("ENOENT", req("open", "/nope", { access = "read" }))
      fails("ENOENT", req("unlink", "/nope"))
      fails("ENOENT", req("rmdir", "/nope"))
      fails("ENOENT", req("readdir", "/nope", { offset = 0 }))
      fails("ENOENT", req("rename", "/nope", { to = "/x", flags = 0 }))
      fails("ENOENT", req("create", "/nope/f", { access = "rdwr" }))
    end)

    it("makes, lists and removes directories", function()
      assert.equal(S_IFDIR, assert(req("mkdir", "/d", { mode = 493 })).attr.mode & S_IFMT)
      fails("EEXIST", req("mkdir", "/d", { mode = 493 }))
      assert(req("mkdir", "/d/e", { mode = 493 }))
      create("/d/f", "x")
      create("/d/e/g", "y")
      assert.same({ "e", "f" }, names("/d"))
      assert.same({ "g" }, names("/d/e"))
      fails("ENOTEMPTY", req("rmdir", "/d"))
      fails("ENOTDIR", req("rmdir", "/d/f"))
      assert(req("unlink", "/d/e/g"))
      assert(req("rmdir", "/d/e"))
      assert(req("unlink", "/d/f"))
      assert(req("rmdir", "/d"))
      assert.same({}, names("/"))
    end)

    it("gives readdir entries their types", function()
      assert(req("mkdir", "/d", { mode = 493 }))
      create("/f", "x")
      assert(req("symlink", "/l", { target = "f" }))
      local r = assert(req("readdir", "/", { offset = 0 }))
      local types = {}
      for _, e in ipairs(r.entries) do types[e[1]] = e[2].mode & S_IFMT end
      assert.equal(S_IFDIR, types.d)
      assert.equal(S_IFREG, types.f)
      assert.equal(S_IFLNK, types.l)
      assert.is_true(r.eof)
    end)

    it("pages a large directory by offset", function()
      assert(req("mkdir", "/big", { mode = 493 }))
      for i = 1, 700 do create(("/big/n%04d"):format(i)) end
      local seen, off = {}, 0
      while true do
        local r = assert(req("readdir", "/big", { offset = off }))
        for _, e in ipairs(r.entries) do
          if e[1] ~= "." and e[1] ~= ".." then
            assert.is_nil(seen[e[1]], "listed twice: " .. e[1])
            seen[e[1]] = true
          end
        end
        off = off + #r.entries
        if r.eof or #r.entries == 0 then break end
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.equal(700, n)
    end)

    it("renames files and directories, replacing the target", function()
      create("/a", "A")
      create("/b", "B")
      assert(req("rename", "/a", { to = "/b", flags = 0 }))
      fails("ENOENT", req("getattr", "/a"))
      assert.equal("A", read_all("/b"))
      assert(req("mkdir", "/d", { mode = 493 }))
      create("/d/in", "I")
      assert(req("rename", "/d", { to = "/e", flags = 0 }))
      assert.equal("I", read_all("/e/in"))
      fails("ENOENT", req("getattr", "/d"))
    end)

    it("refuses RENAME_NOREPLACE onto an existing name", function()
      create("/a", "A")
      create("/b", "B")
      fails("EEXIST", req("rename", "/a", { to = "/b", flags = 1 }))
      assert(req("rename", "/a", { to = "/c", flags = 1 }))
      assert.equal("A", read_all("/c"))
    end)

    it("refuses to rename across mounts with EXDEV", function()
      create("/a", "A")
      fails("EXDEV", srv:request("rename", "/w/a", { to = "/other/a", flags = 0 }))
      assert.equal("A", read_all("/a"))
    end)

    it("makes symlinks and reads them without following", function()
      local a = assert(req("symlink", "/l", { target = "some/where" })).attr
      assert.equal(S_IFLNK, a.mode & S_IFMT)
      assert.equal("some/where", assert(req("readlink", "/l")).target)
      assert.equal(S_IFLNK, assert(req("getattr", "/l")).attr.mode & S_IFMT)
      create("/f")
      fails("EINVAL", req("readlink", "/f"))
    end)

    it("makes hard links that share data", function()
      create("/f", "shared")
      local a = assert(req("link", "/f", { to = "/g" })).attr
      assert.equal(2, a.nlink)
      local o = assert(req("open", "/g", { access = "write" }))
      assert(req("write", "/g", { fh = o.fh, offset = 0, data = "SH" }))
      assert(req("release", "/g", { fh = o.fh }))
      assert.equal("SHared", read_all("/f"))
      assert(req("unlink", "/f"))
      assert.equal(1, assert(req("getattr", "/g")).attr.nlink)
      assert.equal("SHared", read_all("/g"))
    end)

    it("changes mode bits, keeping the type", function()
      create("/x", "#!/bin/sh\n", 420)
      local a = assert(req("setattr", "/x", { mode = 493 })).attr
      assert.equal(493, a.mode & 0xfff)
      assert.equal(S_IFREG, a.mode & S_IFMT)
      assert.equal(493, assert(req("getattr", "/x")).attr.mode & 0xfff)
    end)

    it("sets modification times", function()
      create("/m")
      local t = 1600000000 * 1000000000 + 250000000
      local a = assert(req("setattr", "/m", { mtime = t, atime = t })).attr
      assert.equal(1600000000, a.mtime // 1000000000)
      assert.equal(1600000000, assert(req("getattr", "/m")).attr.mtime // 1000000000)
    end)

    it("stamps writes with the current time", function()
      local before = os.time() - 2
      create("/now", "x")
      local m = assert(req("getattr", "/now")).attr.mtime // 1000000000
      assert.is_true(m >= before and m <= os.time() + 2, "mtime " .. m)
    end)

    it("answers statfs with sane counts", function()
      local st = assert(req("statfs", "/"))
      assert.is_true(st.bsize > 0)
      assert.is_true(st.namelen >= 255)
      assert.is_true(st.bavail <= st.blocks)
    end)

    it("answers access checks", function()
      create("/f")
      assert(req("access", "/f", { mask = 4 }))
      fails("ENOENT", req("access", "/nope", { mask = 0 }))
    end)

    it("refuses paths that are not normalised before any provider sees them", function()
      for _, p in ipairs { "/w/../etc/passwd", "/w/./f", "/w//f", "/w/f/", "w/f", "" } do
        fails("EINVAL", srv:request("getattr", p, {}))
      end
    end)

    it("refuses a stale or unknown handle", function()
      create("/f", "x")
      local o = assert(req("open", "/f", { access = "read" }))
      assert(req("release", "/f", { fh = o.fh }))
      fails("EBADF", req("read", "/f", { fh = o.fh, offset = 0, size = 1 }))
      fails("EBADF", req("read", "/f", { fh = 12345, offset = 0, size = 1 }))
    end)

    it("refuses writes through a handle opened for reading", function()
      create("/f", "x")
      local o = assert(req("open", "/f", { access = "read" }))
      fails("EBADF", req("write", "/f", { fh = o.fh, offset = 0, data = "y" }))
      assert(req("release", "/f", { fh = o.fh }))
      assert.equal("x", read_all("/f"))
    end)
  end)
end

describe("vfs provider realfs confinement", function()
  local dir, outside, srv

  before_each(function()
    dir, outside = tmpdir(), tmpdir()
    local f = assert(io.open(outside .. "/secret", "w"))
    f:write("outside") f:close()
    assert(uv.fs_symlink(outside, dir .. "/abs"))
    assert(uv.fs_symlink("../" .. outside:match("[^/]+$"), dir .. "/rel"))
    assert(uv.fs_symlink(outside .. "/secret", dir .. "/file"))
    assert(uv.fs_mkdir(dir .. "/sub", 493))
  end)

  after_each(function()
    if srv then srv:close() srv = nil end
    rm_rf(dir) rm_rf(outside)
  end)

  for _, walk in ipairs { false, true } do
    local how = walk and " (component walk)" or ""
    it("never follows a symlink out of the root" .. how, function()
      srv = vfs.server(vfs.check_mounts { ["/w"] = vfs.realfs(dir, { walk = walk }) })
      for _, p in ipairs { "/w/abs/secret", "/w/rel/secret" } do
        local r, err = srv:request("getattr", p, {})
        assert.is_nil(r, p)
        assert.is_truthy(err == "EXDEV" or err == "EACCES" or err == "ELOOP", p .. ": " .. tostring(err))
        r, err = srv:request("open", p, { access = "read" })
        assert.is_nil(r, p)
        r, err = srv:request("create", "/w/abs/new", { access = "rdwr" })
        assert.is_nil(r)
      end
      -- the last component is a symlink: open refuses it, lstat shows it
      assert.is_nil((srv:request("open", "/w/file", { access = "read" })))
      assert.equal(S_IFLNK, assert(srv:request("getattr", "/w/file", {})).attr.mode & S_IFMT)
      assert.is_nil(uv.fs_stat(outside .. "/new"))
      local f = assert(io.open(outside .. "/secret"))
      assert.equal("outside", f:read "a") f:close()
    end)

    it("follows nothing when a directory is swapped for a symlink" .. how, function()
      srv = vfs.server(vfs.check_mounts { ["/w"] = vfs.realfs(dir, { walk = walk }) })
      for _ = 1, 50 do
        assert(srv:request("getattr", "/w/sub", {}))
        assert(uv.fs_rmdir(dir .. "/sub"))
        assert(uv.fs_symlink(outside, dir .. "/sub"))
        assert.is_nil((srv:request("getattr", "/w/sub/secret", {})))
        assert.is_nil((srv:request("readdir", "/w/sub", { offset = 0 })))
        assert(uv.fs_unlink(dir .. "/sub"))
        assert(uv.fs_mkdir(dir .. "/sub", 493))
      end
    end)
  end

  it("refuses a realfs root that does not exist or is not a directory", function()
    assert.has_error(function() vfs.check_mounts { ["/w"] = vfs.realfs(dir .. "/missing") } end)
    local f = assert(io.open(dir .. "/plain", "w")) f:close()
    assert.has_error(function() vfs.check_mounts { ["/w"] = vfs.realfs(dir .. "/plain") } end)
  end)
end)

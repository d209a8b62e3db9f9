-- The VFS server without a VM: routing, the rules (readonly, hide,
-- deny_write, tmpfs), hooks, Lua providers that misbehave, and raw FS
-- request frames as the guest sends them (docs/protocol.md).
local vfs = require "gondolin.vfs"
local core = require "gondolin.core"
local uv = require "luv"

local enc, dec = core.cbor_encode, core.cbor_decode
local S_IFMT, S_IFDIR = 0xf000, 0x4000

local function tmpdir() return assert(uv.fs_mkdtemp("/tmp/gondolin-srv-XXXXXX")) end
local function rm_rf(path) os.execute("rm -rf '" .. path .. "'") end

local function put(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data or "") f:close()
end

local function get(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read "a" f:close()
  return d
end

local function fails(code, ...)
  local r, err = ...
  assert.is_nil(r)
  assert.equal(code, err)
end

--- A server for mounts, with its log lines collected.
local function server(mounts, opts)
  local lines = {}
  opts = opts or {}
  opts.log = function(msg) lines[#lines + 1] = msg end
  return vfs.server(vfs.check_mounts(mounts), opts), lines
end

local function names_of(r)
  local out = {}
  for _, e in ipairs(r.entries) do out[#out + 1] = e[1] end
  table.sort(out)
  return out
end

describe("vfs server routing", function()
  local srv

  after_each(function() if srv then srv:close() srv = nil end end)

  it("routes each path to the longest matching mount", function()
    local outer, inner = vfs.memory(), vfs.memory()
    assert(outer:mkdir("/in", 493))
    assert(outer:create("/o"))
    assert(inner:create("/i"))
    srv = server { ["/w"] = outer, ["/w/in"] = inner }
    assert(srv:request("getattr", "/w/o"))
    assert(srv:request("getattr", "/w/in/i"))
    fails("ENOENT", srv:request("getattr", "/w/i"))
    fails("ENOENT", srv:request("getattr", "/w/in/o"))
    -- "/w/inx" is not under "/w/in"
    fails("ENOENT", srv:request("getattr", "/w/inx"))
  end)

  it("answers EINVAL for a path under no mount", function()
    srv = server { ["/w"] = vfs.memory() }
    fails("EINVAL", srv:request("getattr", "/x"))
    fails("EINVAL", srv:request("getattr", "/"))
    fails("EINVAL", srv:request("getattr", "/wx"))
    assert.is_true(srv:covers "/w/a/b")
    assert.is_false(srv:covers "/wa")
  end)

  it("refuses a rename or link between mounts with EXDEV", function()
    local a = vfs.memory()
    assert(a:create("/f"))
    srv = server { ["/a"] = a, ["/b"] = vfs.memory() }
    fails("EXDEV", srv:request("rename", "/a/f", { to = "/b/f", flags = 0 }))
    fails("EXDEV", srv:request("link", "/a/f", { to = "/b/f" }))
    fails("EINVAL", srv:request("rename", "/a/f", { to = "/c/f", flags = 0 }))
    assert(srv:request("getattr", "/a/f"))
  end)

  it("refuses bad mount tables before any server exists", function()
    local d = tmpdir()
    local bad = {
      { { ["w"] = vfs.memory() }, "absolute" },
      { { ["/w/../x"] = vfs.memory() }, "normalised" },
      { { ["/"] = vfs.memory() }, "/" },
      { { ["/proc/x"] = vfs.memory() }, "/proc" },
      { { ["/w"] = vfs.realfs(d .. "/none") }, "does not exist" },
      { { ["/w"] = 42 }, "provider" },
    }
    for _, c in ipairs(bad) do
      local ok, err = pcall(vfs.check_mounts, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err, 1, true)
    end
    rm_rf(d)
  end)
end)

describe("vfs server rules", function()
  local dir, srv, log

  before_each(function()
    dir = tmpdir()
    put(dir .. "/.env", "TOKEN=secret")
    put(dir .. "/keep", "k")
    put(dir .. "/locked", "l")
    assert(uv.fs_mkdir(dir .. "/.git", 493))
    put(dir .. "/.git/config", "[core]")
    put(dir .. "/.git/HEAD", "ref")
  end)

  after_each(function()
    if srv then srv:close() srv = nil end
    rm_rf(dir)
  end)

  it("makes every mutation of a readonly mount EROFS and leaves reads alone", function()
    srv = server { ["/r"] = vfs.readonly(vfs.realfs(dir)), ["/m"] = vfs.readonly(vfs.memory()) }
    assert.equal("k", assert(srv:request("read", "/r/keep", {
      fh = assert(srv:request("open", "/r/keep", { access = "read" })).fh, offset = 0, size = 10 })).data)
    for _, root in ipairs { "/r", "/m" } do
      fails("EROFS", srv:request("create", root .. "/n", { access = "rdwr" }))
      fails("EROFS", srv:request("mkdir", root .. "/d", { mode = 493 }))
      fails("EROFS", srv:request("symlink", root .. "/s", { target = "x" }))
      fails("EROFS", srv:request("setattr", root, { mode = 511 }))
    end
    fails("EROFS", srv:request("open", "/r/keep", { access = "write" }))
    fails("EROFS", srv:request("open", "/r/keep", { access = "rdwr" }))
    fails("EROFS", srv:request("unlink", "/r/keep"))
    fails("EROFS", srv:request("rename", "/r/keep", { to = "/r/k2", flags = 0 }))
    fails("EROFS", srv:request("link", "/r/keep", { to = "/r/k2" }))
    fails("EROFS", srv:request("setattr", "/r/keep", { size = 0 }))
    assert.equal("k", get(dir .. "/keep"))
  end)

  it("hides paths: not found, not listed, not creatable, not renamed over", function()
    srv = server { ["/s"] = vfs.shadow(vfs.realfs(dir), { hide = { "/.env", "/.git/config" } }) }
    fails("ENOENT", srv:request("getattr", "/s/.env"))
    fails("ENOENT", srv:request("open", "/s/.env", { access = "read" }))
    fails("ENOENT", srv:request("getattr", "/s/.git/config"))
    assert(srv:request("getattr", "/s/.git/HEAD"))
    fails("EACCES", srv:request("create", "/s/.env", { access = "rdwr" }))
    fails("ENOENT", srv:request("unlink", "/s/.env"))
    assert.is_nil((srv:request("rename", "/s/keep", { to = "/s/.env", flags = 0 })))
    assert.is_nil((srv:request("rename", "/s/.env", { to = "/s/x", flags = 0 })))
    -- a directory holding a hidden path cannot be moved out from under it
    fails("EACCES", srv:request("rename", "/s/.git", { to = "/s/g", flags = 0 }))
    assert.same({ ".git", "keep", "locked" }, names_of(assert(srv:request("readdir", "/s", { offset = 0 }))))
    assert.same({ "HEAD" }, names_of(assert(srv:request("readdir", "/s/.git", { offset = 0 }))))
    assert.equal("TOKEN=secret", get(dir .. "/.env"))
    assert.equal("k", get(dir .. "/keep"))
  end)

  it("pages a directory with hidden names without losing or repeating one", function()
    assert(uv.fs_mkdir(dir .. "/big", 493))
    local hide = {}
    for i = 1, 1200 do
      put(("%s/big/f%04d"):format(dir, i))
      if i % 7 == 0 then hide[#hide + 1] = ("/big/f%04d"):format(i) end
    end
    srv = server { ["/s"] = vfs.shadow(vfs.realfs(dir), { hide = hide }) }
    local seen, n, off, pages = {}, 0, 0, 0
    repeat
      local r = assert(srv:request("readdir", "/s/big", { offset = off }))
      pages = pages + 1
      for _, e in ipairs(r.entries) do
        assert.is_nil(seen[e[1]], e[1])
        assert.is_true(tonumber(e[1]:sub(2)) % 7 ~= 0, e[1] .. " is hidden")
        seen[e[1]] = true
        n = n + 1
      end
      off = off + #r.entries
    until r.eof or #r.entries == 0
    assert.equal(1200 - 1200 // 7, n)
    assert.is_true(pages >= 2)
  end)

  it("denies writes to deny_write paths but lets them be read", function()
    srv = server { ["/s"] = vfs.shadow(vfs.realfs(dir), { deny_write = { "/locked", "/.git" } }) }
    local o = assert(srv:request("open", "/s/locked", { access = "read" }))
    assert.equal("l", assert(srv:request("read", "/s/locked", { fh = o.fh, offset = 0, size = 9 })).data)
    fails("EACCES", srv:request("open", "/s/locked", { access = "write" }))
    fails("EACCES", srv:request("unlink", "/s/locked"))
    fails("EACCES", srv:request("setattr", "/s/locked", { mode = 511 }))
    fails("EACCES", srv:request("create", "/s/.git/new", { access = "rdwr" }))
    fails("EACCES", srv:request("rename", "/s/keep", { to = "/s/locked", flags = 0 }))
    assert(srv:request("open", "/s/keep", { access = "write" }))
    assert.equal("l", get(dir .. "/locked"))
  end)

  it("serves tmpfs paths from memory, leaving the host directory untouched", function()
    assert(uv.fs_mkdir(dir .. "/cache", 493))
    srv = server { ["/s"] = vfs.shadow(vfs.realfs(dir), { tmpfs = { "/cache" } }) }
    local c = assert(srv:request("create", "/s/cache/t", { access = "rdwr" }))
    assert(srv:request("write", "/s/cache/t", { fh = c.fh, offset = 0, data = "temp" }))
    assert(srv:request("release", "/s/cache/t", { fh = c.fh }))
    assert.equal(4, assert(srv:request("getattr", "/s/cache/t")).attr.size)
    assert.is_nil(uv.fs_stat(dir .. "/cache/t"))
  end)
end)

describe("vfs server hooks", function()
  local srv

  after_each(function() if srv then srv:close() srv = nil end end)

  it("calls before and after with the op, full guest paths and the result", function()
    local seen = {}
    local mem = vfs.memory()
    assert(mem:create("/f"))
    srv = server({ ["/w"] = mem }, { hooks = {
      before = function(op, ctx) seen[#seen + 1] = { "before", op, ctx.path, ctx.mount, ctx.to } end,
      after = function(op, ctx, r) seen[#seen + 1] = { "after", op, ctx.path, r.err or "ok" } end,
    } })
    assert(srv:request("getattr", "/w/f"))
    fails("ENOENT", srv:request("getattr", "/w/g"))
    assert(srv:request("rename", "/w/f", { to = "/w/h", flags = 0 }))
    assert.same({
      { "before", "getattr", "/w/f", "/w" }, { "after", "getattr", "/w/f", "ok" },
      { "before", "getattr", "/w/g", "/w" }, { "after", "getattr", "/w/g", "ENOENT" },
      { "before", "rename", "/w/f", "/w", "/w/h" }, { "after", "rename", "/w/f", "ok" },
    }, seen)
  end)

  it("lets before deny with false (EACCES) or an errno name", function()
    local d = tmpdir()
    put(d .. "/f", "x")
    srv = server({ ["/w"] = vfs.realfs(d) }, { hooks = { before = function(op, ctx)
      if op == "unlink" then return false end
      if ctx.path == "/w/f" and op == "open" and ctx.access ~= "read" then return "EROFS" end
      if op == "mkdir" then return "ENOTANERRNO" end
    end } })
    fails("EACCES", srv:request("unlink", "/w/f"))
    fails("EROFS", srv:request("open", "/w/f", { access = "write" }))
    fails("EACCES", srv:request("mkdir", "/w/d", { mode = 493 }))
    assert(srv:request("open", "/w/f", { access = "read" }))
    assert.equal("x", get(d .. "/f"))
    rm_rf(d)
  end)

  it("fails a call with EIO when before raises, logs it, and serves the next", function()
    local n = 0
    local lines
    srv, lines = server({ ["/w"] = vfs.memory() }, { hooks = { before = function()
      n = n + 1
      if n == 1 then error("hook broke") end
    end, after = function() error("after broke") end } })
    fails("EIO", srv:request("getattr", "/w"))
    assert(srv:request("getattr", "/w"))
    assert.matches("vfs_hooks.before raised: .*hook broke", lines[1])
    assert.matches("vfs_hooks.after raised: .*after broke", lines[#lines])
  end)

  it("refuses hooks that are not functions", function()
    assert.has_error(function() server({ ["/w"] = vfs.memory() }, { hooks = { before = 1 } }) end,
      "gondolin: vm option 'vfs_hooks': before must be a function")
    assert.has_error(function() server({ ["/w"] = vfs.memory() }, { hooks = { around = print } }) end)
  end)
end)

describe("vfs server with a Lua provider that misbehaves", function()
  local srv, lines

  after_each(function() if srv then srv:close() srv = nil end end)

  local function with(p) srv, lines = server { ["/api"] = p } end

  it("gives ENOSYS for a missing read method and EROFS for a missing mutation", function()
    with { name = "tiny", getattr = function(_, path)
      if path == "/" then return { type = "dir" } end
      if path == "/f" then return { type = "file", size = 3 } end
    end }
    local o = assert(srv:request("open", "/api/f", { access = "read" }))
    fails("ENOSYS", srv:request("read", "/api/f", { fh = o.fh, offset = 0, size = 3 }))
    fails("ENOSYS", srv:request("readdir", "/api", { offset = 0 }))
    fails("ENOSYS", srv:request("readlink", "/api/f"))
    fails("EROFS", srv:request("open", "/api/f", { access = "write" }))
    fails("EROFS", srv:request("create", "/api/g", { access = "rdwr" }))
    fails("EROFS", srv:request("mkdir", "/api/d", { mode = 493 }))
    fails("EROFS", srv:request("unlink", "/api/f"))
    fails("EROFS", srv:request("setattr", "/api/f", { mode = 511 }))
    fails("ENOENT", srv:request("getattr", "/api/none"))
    assert.same({}, lines)
  end)

  it("serves the documented shapes: getattr, readdir, read, write", function()
    local files = { ["/a.txt"] = "alpha", ["/b.txt"] = "bravo!" }
    with {
      getattr = function(_, path)
        if path == "/" then return { type = "dir", mode = 493 } end
        if files[path] then return { type = "file", size = #files[path], mode = 420, mtime = 1700000000 } end
        return nil
      end,
      readdir = function() return { "a.txt", "b.txt" } end,
      read = function(_, path, off, len) return files[path]:sub(off + 1, off + len) end,
      write = function(_, path, off, data)
        local s = files[path]
        files[path] = s:sub(1, off) .. data .. s:sub(off + #data + 1)
        return #data
      end,
    }
    assert.same({ "a.txt", "b.txt" }, names_of(assert(srv:request("readdir", "/api", { offset = 0 }))))
    local a = assert(srv:request("getattr", "/api/b.txt")).attr
    assert.equal(6, a.size)
    assert.equal(1700000000 * 1000000000, a.mtime)
    local o = assert(srv:request("open", "/api/a.txt", { access = "rdwr" }))
    assert.equal("lph", assert(srv:request("read", "/api/a.txt", { fh = o.fh, offset = 1, size = 3 })).data)
    assert.equal(2, assert(srv:request("write", "/api/a.txt", { fh = o.fh, offset = 0, data = "AL" })).size)
    assert.equal("ALpha", files["/a.txt"])
  end)

  it("passes through nil, errno name and refuses names that are not errnos", function()
    with { getattr = function(_, path)
      if path == "/" then return { type = "dir" } end
      if path == "/perm" then return nil, "EACCES" end
      return nil, "EBOGUS"
    end }
    fails("EACCES", srv:request("getattr", "/api/perm"))
    fails("EIO", srv:request("getattr", "/api/other"))
    assert.matches("vfs provider 'lua table' %(mount /api%) method getattr: returned nil, EBOGUS", lines[1])
  end)

  it("fails one call with EIO per wrong type or raise, naming provider and method, and serves the next", function()
    local mode = "raise"
    with { name = "flaky",
      getattr = function(_, path)
        if path == "/" then return { type = "dir" } end
        if mode == "attr" then return "not a table" end
        if mode == "type" then return { type = "fifo" } end
        if mode == "size" then return { type = "file", size = -1 } end
        if mode == "mtime" then return { type = "file", mtime = "yesterday" } end
        return { type = "file", size = 4 }
      end,
      read = function()
        if mode == "raise" then error("disk on fire") end
        if mode == "read" then return 42 end
        return "data"
      end,
      readdir = function() if mode == "dir" then return { "ok", 7 } end return "nope" end,
      readlink = function() return {} end,
      write = function() return 99 end,
    }
    local o = assert(srv:request("open", "/api/f", { access = "rdwr" }))
    local function read() return srv:request("read", "/api/f", { fh = o.fh, offset = 0, size = 4 }) end
    fails("EIO", read())
    assert.matches("^gondolin: vfs provider 'flaky' %(mount /api%) method read: raised: .*disk on fire$", lines[1])
    mode = "read"
    fails("EIO", read())
    assert.matches("method read: returned a number, expected a string", lines[2])
    mode = "ok"
    assert.equal("data", assert(read()).data)
    for _, m in ipairs { "attr", "type", "size", "mtime" } do
      mode = m
      fails("EIO", srv:request("getattr", "/api/f"))
      assert.matches("method getattr: ", lines[#lines])
    end
    fails("EIO", srv:request("readdir", "/api", { offset = 0 }))
    assert.matches("method readdir: returned a string, expected an array of names", lines[#lines])
    mode = "dir"
    fails("EIO", srv:request("readdir", "/api", { offset = 0 }))
    assert.matches("method readdir: entry 2 is a number, expected a name", lines[#lines])
    mode = "ok"
    fails("EIO", srv:request("readlink", "/api/f"))
    assert.matches("method readlink: returned table", lines[#lines])
    fails("EIO", srv:request("write", "/api/f", { fh = o.fh, offset = 0, data = "ab" }))
    assert.matches("method write: returned 99, expected a byte count 0..2", lines[#lines])
    assert.equal("data", assert(read()).data)
  end)

  it("fails a provider method or hook that never returns with EIO, and serves the next call", function()
    local spin = true
    srv, lines = server({ ["/api"] = {
      getattr = function() return { type = "dir" } end,
      readdir = function()
        while spin do end
        return { "a" }
      end,
    } }, { budget = 100000, hooks = { before = function(op) if op == "statfs" then while true do end end end } })
    fails("EIO", srv:request("readdir", "/api", { offset = 0 }))
    assert.equal("gondolin: vfs provider 'lua table' (mount /api) method readdir: " ..
      "ran out of its instruction budget (100000 instructions)", lines[1])
    fails("EIO", srv:request("statfs", "/api"))
    assert.equal("gondolin: vfs_hooks.before ran out of its instruction budget (100000 instructions)", lines[2])
    spin = false
    assert.equal("a", assert(srv:request("readdir", "/api", { offset = 0 })).entries[1][1])
  end)

  it("reports a method that is not a function", function()
    with { getattr = function() return { type = "dir" } end, readdir = "a list" }
    fails("EIO", srv:request("readdir", "/api", { offset = 0 }))
    assert.matches("method readdir: is a string, not a function", lines[1])
  end)

  it("truncates a read longer than asked", function()
    with { getattr = function(_, p) return { type = p == "/" and "dir" or "file", size = 100 } end,
           read = function() return ("x"):rep(100) end }
    local o = assert(srv:request("open", "/api/f", { access = "read" }))
    assert.equal(10, #assert(srv:request("read", "/api/f", { fh = o.fh, offset = 0, size = 10 })).data)
  end)
end)

describe("vfs server frames", function()
  -- raw requests, as the agent sends them: srv.srv:frame(type, payload)
  local FS = { LOOKUP = 0x01, GETATTR = 0x02, SETATTR = 0x03, OPEN = 0x0b, CREATE = 0x0c, READ = 0x0d,
               WRITE = 0x0e, RELEASE = 0x10, READDIR = 0x11 }
  local dir, srv

  before_each(function()
    dir = tmpdir()
    put(dir .. "/f", "file data")
    srv = server { ["/w"] = vfs.realfs(dir) }
  end)

  after_each(function()
    srv:close()
    rm_rf(dir)
  end)

  --- Send one frame to the C dispatcher: the reply map and the bytes after it.
  local function frame(ty, payload)
    local reply, call = srv.srv:frame(ty, payload)
    assert.is_truthy(reply, "the C route answered itself")
    assert.is_nil(call)
    -- a successful read is an empty map, then the data
    if ty == FS.READ and reply:byte(1) == 0xa0 then return {}, reply:sub(2) end
    return assert(dec(reply))
  end

  local function err_of(ty, payload) return (frame(ty, payload)).err end

  it("answers a well-formed lookup and read", function()
    local m = frame(FS.LOOKUP, enc { path = "/w/f" })
    assert.equal(9, m.attr.size)
    local o = frame(FS.OPEN, enc { path = "/w/f", access = 0 })
    assert.is_truthy(o.fh)
    local r, data = frame(FS.READ, enc { fh = o.fh, offset = 5, size = 100 })
    assert.is_nil(r.err)
    assert.equal("data", data)
    assert.same({}, (frame(FS.RELEASE, enc { fh = o.fh })))
  end)

  it("writes the raw bytes that follow the map", function()
    local c = frame(FS.CREATE, enc { path = "/w/n", mode = 420, access = 2, excl = true })
    assert.is_truthy(c.fh)
    assert.equal(5, frame(FS.WRITE, enc { fh = c.fh, offset = 0 } .. "\0bin\255").size)
    frame(FS.RELEASE, enc { fh = c.fh })
    assert.equal("\0bin\255", get(dir .. "/n"))
  end)

  it("answers malformed payloads with EIO", function()
    for _, p in ipairs { "", "\xff", "\xa1\x64path", "\x81\x00", enc { path = 3 },
                         "\xa2\x64path\x64/w/f\x64path\x64/w/f",    -- a key twice
                         enc { path = "/w/f", mode = "rw" } } do
      assert.equal("EIO", err_of(FS.LOOKUP, p), ("%q"):format(p))
    end
    assert.equal("EIO", err_of(FS.READ, enc { fh = -1, offset = 0, size = 1 }))
  end)

  it("answers an unknown type with ENOSYS", function()
    assert.equal("ENOSYS", err_of(0x14, enc { path = "/w/f" }))
    assert.equal("ENOSYS", err_of(0x3f, ""))
  end)

  it("answers bad paths and sizes with EINVAL", function()
    for _, p in ipairs { "/w/../f", "/w/./f", "/w//f", "/w/f/", "w/f", "/w/a\0b", "/x/f",
                         "/w/" .. ("n"):rep(256), "/w" .. ("/d"):rep(2100) } do
      local e = err_of(FS.LOOKUP, enc { path = p })
      assert.is_truthy(e == "EINVAL" or e == "ENAMETOOLONG", ("%q: %s"):format(p:sub(1, 40), tostring(e)))
    end
    local o = frame(FS.OPEN, enc { path = "/w/f", access = 0 })
    assert.equal("EINVAL", err_of(FS.READ, enc { fh = o.fh, offset = 0, size = 128 * 1024 + 1 }))
    assert.equal("EINVAL", err_of(FS.WRITE, enc { fh = o.fh, offset = 0 } .. ("x"):rep(128 * 1024 + 1)))
  end)

  it("answers EBADF for unknown, stale and foreign handles and for writes on read handles", function()
    assert.equal("EBADF", err_of(FS.READ, enc { fh = 12345, offset = 0, size = 1 }))
    local o = frame(FS.OPEN, enc { path = "/w/f", access = 0 })
    assert.equal("EBADF", err_of(FS.WRITE, enc { fh = o.fh, offset = 0 } .. "x"))
    frame(FS.RELEASE, enc { fh = o.fh })
    assert.equal("EBADF", err_of(FS.READ, enc { fh = o.fh, offset = 0, size = 1 }))
    -- the slot reused gets a new generation: the old fh stays dead
    local o2 = frame(FS.OPEN, enc { path = "/w/f", access = 0 })
    assert.are_not.equal(o.fh, o2.fh)
    assert.equal("EBADF", err_of(FS.READ, enc { fh = o.fh, offset = 0, size = 1 }))
    assert.equal("file data", select(2, frame(FS.READ, enc { fh = o2.fh, offset = 0, size = 64 })))
    assert.equal("file data", get(dir .. "/f"))
  end)

  it("gives EMFILE past 1024 open handles and recovers when they are released", function()
    local fhs = {}
    for i = 1, 1024 do
      local m = frame(FS.OPEN, enc { path = "/w/f", access = 0 })
      assert.is_truthy(m.fh, "open " .. i .. ": " .. tostring(m.err))
      fhs[i] = m.fh
    end
    assert.equal("EMFILE", err_of(FS.OPEN, enc { path = "/w/f", access = 0 }))
    assert.equal(1024, srv:stats().handles)
    for _, fh in ipairs(fhs) do frame(FS.RELEASE, enc { fh = fh }) end
    assert.equal(0, srv:stats().handles)
    assert.is_truthy(frame(FS.OPEN, enc { path = "/w/f", access = 0 }).fh)
  end)

  it("defers calls to Lua providers, and bounds how many wait", function()
    local lua_srv = server { ["/api"] = { getattr = function() return { type = "dir" } end } }
    local calls = {}
    for i = 1, 128 do
      local reply, call = lua_srv.srv:frame(FS.GETATTR, enc { path = "/api" })
      assert.is_false(reply, "call " .. i)
      calls[i] = call
    end
    local reply = lua_srv.srv:frame(FS.GETATTR, enc { path = "/api" })
    assert.equal("EAGAIN", dec(reply).err)
    for _, c in ipairs(calls) do
      local r = assert(lua_srv:serve(c))
      local out, good = lua_srv.srv:reply(c, r)
      assert.is_true(good)
      assert.equal(S_IFDIR, dec(out).attr.mode & S_IFMT)
    end
    assert.equal(0, lua_srv:stats().pending)
    lua_srv:close()
  end)
end)

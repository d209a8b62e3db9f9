-- The guest's FUSE mounts, served by the host: realfs, readonly, memory,
-- shadow and a Lua table provider, seen through guest tools; vm.fs; the
-- CLI flags. One base VM serves most of the file.
local gondolin = require "gondolin"
local sched = require "gondolin.sched"
local uv = require "luv"
local util = require "helpers.util"
local vfs = gondolin.vfs

local function rm(path) util.sh("rm -rf '" .. path .. "'") end

describe("vfs mounts", function()
  local vm, root, ref, outside, api_calls

  local function sh(script, opts)
    local r = assert(vm:exec({ "/bin/sh", "-c", script }, opts))
    return r
  end

  local function ok(script)
    local r = sh(script)
    assert(r.code == 0, script .. " => " .. r.code .. ": " .. r.stdout .. r.stderr)
    return r.stdout
  end

  setup(function()
    root, ref, outside = util.tmpdir(), util.tmpdir(), util.tmpdir()
    util.write_file(root .. "/hello.txt", "hello\n")
    util.write_file(ref .. "/doc.txt", "reference\n")
    util.write_file(outside .. "/secret.txt", "OUTSIDE-SECRET\n")
    util.write_file(root .. "/.env", "TOKEN=hunter2\n")
    assert(uv.fs_mkdir(root .. "/.git", 493))
    util.write_file(root .. "/.git/config", "[core]\n")
    util.write_file(root .. "/.git/HEAD", "ref: refs/heads/main\n")
    api_calls = 0
    local api = {
      name = "api",
      getattr = function(_, p)
        if p == "/" then return { type = "dir" } end
        if p == "/hello" then return { type = "file", size = 6, mtime = 1000000000 } end
        if p == "/boom" then return { type = "file", size = 10 } end
        if p == "/bad" then return "not a table" end
      end,
      readdir = function() return { "hello", "boom" } end,
      read = function(_, p, off, len)
        api_calls = api_calls + 1
        if p == "/boom" then error("provider exploded") end
        sched.sleep(0.001)   -- providers may wait
        return ("world\n"):sub(off + 1, off + len)
      end,
    }
    vm = gondolin.vm { image = "base", memory = "1G", mounts = {
      ["/workspace"] = vfs.realfs(root),
      ["/ref"] = vfs.readonly(vfs.realfs(ref)),
      ["/scratch"] = vfs.memory(),
      ["/secrets"] = vfs.shadow(vfs.realfs(root), { hide = { "/.env", "/.git/config" } }),
      ["/api"] = api,
    } }
  end)

  teardown(function()
    if vm then vm:close() end
    for _, d in ipairs { root, ref, outside } do if d then rm(d) end end
  end)

  it("mounts every path before the first exec", function()
    local out = ok("grep fuse.gondolin /proc/mounts | cut -d' ' -f2 | sort")
    assert.equal("/api\n/ref\n/scratch\n/secrets\n/workspace\n", out)
  end)

  it("creates, writes, appends, truncates and renames; the host sees it", function()
    ok("cd /workspace && echo one > f && echo two >> f && cp f g && truncate -s 2 g && mv g h")
    assert.equal("one\ntwo\n", util.read_file(root .. "/f"))
    assert.equal("on", util.read_file(root .. "/h"))
    assert.is_nil(uv.fs_stat(root .. "/g"))
    util.write_file(root .. "/from-host", "host data")
    assert.equal("host data", ok("cat /workspace/from-host"))
  end)

  it("makes symlinks and hard links", function()
    ok("cd /workspace && ln -s hello.txt link && ln hello.txt hard")
    assert.equal("hello.txt", uv.fs_readlink(root .. "/link"))
    assert.equal("hello\n", ok("cat /workspace/link"))
    assert.equal("2\n", ok("stat -c %h /workspace/hard"))
    assert.equal(2, uv.fs_stat(root .. "/hello.txt").nlink)
  end)

  it("runs a file after chmod +x", function()
    ok("printf '#!/bin/sh\\necho ran $1\\n' > /workspace/t.sh && chmod +x /workspace/t.sh")
    assert.equal("ran x\n", ok("/workspace/t.sh x"))
    assert.equal(tonumber("755", 8), uv.fs_stat(root .. "/t.sh").mode & 4095)
    ok("chmod 600 /workspace/t.sh")
    assert.equal(tonumber("600", 8), uv.fs_stat(root .. "/t.sh").mode & 4095)
  end)

  it("keeps mtimes as ls, stat, cp -a and tar expect", function()
    -- the guest's clock is the host's (CLOCK_SET at boot): a new file is
    -- not from the future, so ls shows its time of day, not a year
    assert.matches(" %d%d:%d%d new$", ok("cd /workspace && touch new && ls -l new"):gsub("\n$", ""))
    ok("touch -d '2001-02-03 04:05:06' /workspace/old")
    assert.equal(981173106, uv.fs_stat(root .. "/old").mtime.sec)
    assert.equal("981173106\n", ok("stat -c %Y /workspace/old"))
    assert.matches("Feb  3  2001", ok("ls -l /workspace/old"))
    ok("cp -a /workspace/old /workspace/old2")
    assert.equal("981173106\n", ok("stat -c %Y /workspace/old2"))
    ok("mkdir -p /workspace/tree/a && echo x > /workspace/tree/a/x && touch -d @1500000000 /workspace/tree/a/x" ..
       " && cd /workspace && tar cf /tmp/t.tar tree && mkdir -p /workspace/untar && tar xf /tmp/t.tar -C /workspace/untar")
    assert.equal("1500000000 x\n", ok("stat -c '%Y' /workspace/untar/tree/a/x; cat /workspace/untar/tree/a/x"):gsub("\n", " ", 1))
  end)

  it("lets git init and commit inside a realfs mount", function()
    ok("mkdir /workspace/repo && cd /workspace/repo && git init -q && echo a > a && git add a" ..
       " && git -c user.email=t@t -c user.name=t commit -qm first && echo b >> a" ..
       " && git -c user.email=t@t -c user.name=t commit -qam second")
    assert.equal("2\n", ok("cd /workspace/repo && git rev-list --count HEAD"))
    assert.equal("", ok("cd /workspace/repo && git status --porcelain"))
    assert.truthy(uv.fs_stat(root .. "/repo/.git/HEAD"))
  end)

  it("never reaches outside the root: .., absolute and relative symlinks", function()
    assert.truthy(uv.fs_symlink(outside .. "/secret.txt", root .. "/abs"))
    assert.truthy(uv.fs_symlink("../" .. outside:match("[^/]+$") .. "/secret.txt", root .. "/rel"))
    assert.truthy(uv.fs_symlink(outside, root .. "/dirlink"))
    local r = sh("cat /workspace/abs /workspace/rel /workspace/dirlink/secret.txt " ..
      "/workspace/../workspace/../../" .. outside .. "/secret.txt 2>&1; ls /workspace/dirlink/ 2>&1")
    assert.not_matches("OUTSIDE", r.stdout)
  end)

  it("never reaches outside when a directory is swapped for a symlink during access", function()
    assert(uv.fs_mkdir(root .. "/sw", 493))
    util.write_file(root .. "/sw/secret.txt", "inside\n")
    local p = vm:spawn({ "/bin/sh", "-c",
      "i=0; while [ $i -lt 300 ]; do cat /workspace/sw/secret.txt 2>/dev/null; i=$((i+1)); done" })
    local real = true
    while not p.done.fired do
      if real then
        uv.fs_rename(root .. "/sw", root .. "/sw.real")
        uv.fs_symlink(outside, root .. "/sw")
      else
        uv.fs_unlink(root .. "/sw")
        uv.fs_rename(root .. "/sw.real", root .. "/sw")
      end
      real = not real
      sched.sleep(0.002)
    end
    local r = p:wait()
    assert.not_matches("OUTSIDE", r.stdout)
    assert.matches("inside", r.stdout)
  end)

  it("hides shadowed paths", function()
    local out = ok("ls -a /secrets; ls -a /secrets/.git")
    assert.not_matches("%.env", out)
    assert.not_matches("config", out)
    assert.matches("HEAD", out)
    local r = sh("cat /secrets/.env; cat /secrets/.git/config")
    assert.not_equal(0, r.code)
    assert.not_matches("hunter2", r.stdout)
    assert.not_equal(0, sh("echo x > /secrets/.env").code)
    assert.not_equal(0, sh("mv /secrets/.git /secrets/g").code)
    assert.equal("TOKEN=hunter2\n", util.read_file(root .. "/.env"))
  end)

  it("returns EROFS on a readonly mount", function()
    assert.equal("reference\n", ok("cat /ref/doc.txt"))
    for _, cmd in ipairs { "touch /ref/x", "echo y >> /ref/doc.txt", "rm /ref/doc.txt", "mkdir /ref/d",
                           "chmod 777 /ref/doc.txt", "ln -s a /ref/l", "mv /ref/doc.txt /ref/d2" } do
      local r = sh(cmd)
      assert.not_equal(0, r.code, cmd)
      assert.matches("Read%-only file system", r.stderr, cmd)
    end
    assert.equal("reference\n", util.read_file(ref .. "/doc.txt"))
  end)

  it("keeps a memory mount in memory", function()
    ok("mkdir -p /scratch/a/b && echo m > /scratch/a/b/f && ln -s f /scratch/a/b/l")
    assert.equal("m\n", ok("cat /scratch/a/b/l"))
    assert.equal("m\n", vm.fs:read "/scratch/a/b/f")
  end)

  it("serves a Lua table provider; an erroring call is EIO for that call only", function()
    assert.equal("world\n", ok("cat /api/hello"))
    assert.equal("boom\nhello\n", ok("ls /api | sort"))
    local r = sh("cat /api/boom")
    assert.not_equal(0, r.code)
    assert.matches("Input/output error", r.stderr)
    assert.not_equal(0, sh("stat /api/bad").code)
    assert.equal("world\n", ok("cat /api/hello"))
    assert.is_true(api_calls >= 2)
  end)

  it("copies a 200 MiB file in and out with equal sha256", function()
    local size = 200 * 1024 * 1024
    assert.equal(0, (util.sh(("head -c %d /dev/urandom > '%s/big'"):format(size, root))))
    local _, want = util.sh(("sha256sum '%s/big' | cut -d' ' -f1"):format(root))
    local got = ok("cp /workspace/big /tmp/big && sha256sum /tmp/big | cut -d' ' -f1")
    assert.equal(want, got)
    ok("head -c 1000 /dev/urandom >> /tmp/big && cp /tmp/big /workspace/big.out")
    local inside = ok("sha256sum /tmp/big | cut -d' ' -f1; rm /tmp/big")
    local _, host = util.sh(("sha256sum '%s/big.out' | cut -d' ' -f1"):format(root))
    assert.equal(inside, host)
    rm(root .. "/big")
    rm(root .. "/big.out")
  end)

  describe("vm.fs", function()
    it("reads, writes, appends and lists mounted paths on the host side", function()
      assert.is_true(vm.fs:write("/workspace/vmfs.txt", "a"))
      assert.is_true(vm.fs:append("/workspace/vmfs.txt", "b"))
      assert.equal("ab", util.read_file(root .. "/vmfs.txt"))
      assert.equal("ab", vm.fs:read "/workspace/vmfs.txt")
      assert.equal("ab", ok("cat /workspace/vmfs.txt"))
      local names = vm.fs:list "/workspace"
      assert.truthy(table.concat(names, " "):find("vmfs.txt", 1, true))
      local st = vm.fs:stat "/workspace/vmfs.txt"
      assert.equal("file", st.type)
      assert.equal(2, st.size)
      assert.equal("hello\n", vm.fs:read "/workspace/link")   -- a symlink inside the mount
    end)

    it("applies the mounts' rules", function()
      local v, err = vm.fs:read "/secrets/.env"
      assert.is_nil(v)
      assert.matches("ENOENT", err)
      v, err = vm.fs:write("/ref/x", "y")
      assert.is_nil(v)
      assert.matches("EROFS", err)
    end)

    it("makes, renames and removes directories in mounts and in the guest", function()
      for _, base in ipairs { "/workspace/vd", "/tmp/vd" } do
        assert.is_true(vm.fs:mkdir(base .. "/x/y", { parents = true }))
        assert.is_true(vm.fs:write(base .. "/x/y/f", "z"))
        assert.is_true(vm.fs:rename(base .. "/x/y/f", base .. "/x/g"))
        assert.equal("z", vm.fs:read(base .. "/x/g"))
        assert.same({ "g", "y" }, vm.fs:list(base .. "/x"))
        assert.equal("dir", vm.fs:stat(base .. "/x").type)
        assert.is_true(vm.fs:remove(base, { recursive = true }))
        assert.is_nil(vm.fs:stat(base))
      end
      assert.is_nil(uv.fs_stat(root .. "/vd"))
    end)

    it("reads any guest path through the agent and streams large files", function()
      assert.matches("Debian", vm.fs:read "/etc/os-release")
      local chunk, n = ("0123456789abcdef"):rep(4096), 0
      assert.is_true(vm.fs:write("/tmp/stream", function()
        n = n + 1
        if n <= 256 then return chunk end   -- 16 MiB
      end))
      local total = 0
      assert.is_true(vm.fs:read("/tmp/stream", { sink = function(c) total = total + #c end }))
      assert.equal(16 * 1024 * 1024, total)
      assert.equal("16777216\n", ok("stat -c %s /tmp/stream"))
      local v, err = vm.fs:read "/no/such/file"
      assert.is_nil(v)
      assert.matches("/no/such/file", err)
    end)
  end)
end)

describe("vfs hooks and bad mounts", function()
  it("refuses bad mounts before boot with a clear error", function()
    local dir = util.tmpdir()
    for _, case in ipairs {
      { { ["workspace"] = vfs.realfs(dir) }, "absolute and normalised" },
      { { ["/w/"] = vfs.realfs(dir) }, "absolute and normalised" },
      { { ["/"] = vfs.realfs(dir) }, "root" },
      { { ["/proc/x"] = vfs.realfs(dir) }, "/proc" },
      { { ["/w"] = vfs.realfs(dir .. "/missing") }, "does not exist" },
      { { ["/w"] = 42 }, "expected a provider" },
      { { ["/w"] = vfs.readonly(vfs.realfs(dir)), ["/w/sub/m"] = vfs.memory() }, "read-only root" },
      { { ["/w"] = vfs.shadow(vfs.realfs(dir), { hide = { "/h" } }), ["/w/h/m"] = vfs.memory() }, "hides" },
    } do
      local ok, err = pcall(gondolin.vm, { image = "minimal", mounts = case[1] })
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    rm(dir)
  end)

  it("calls before/after around every operation; before can deny", function()
    local dir = util.tmpdir()
    util.write_file(dir .. "/forbidden", "no")
    util.write_file(dir .. "/fine", "yes")
    local seen = {}
    local vm <close> = gondolin.vm { image = "minimal", mounts = { ["/w"] = vfs.realfs(dir) },
      vfs_hooks = {
        before = function(op, ctx) if ctx.path == "/w/forbidden" then return "EPERM" end end,
        after = function(op, ctx, result) seen[#seen + 1] = op .. " " .. ctx.path .. " " .. (result.err or "ok") end,
      } }
    local r = vm:exec { "/bin/sh", "-c", "cat /w/fine; cat /w/forbidden" }
    assert.equal("yes", r.stdout)
    assert.matches("Operation not permitted", r.stderr)
    local log = table.concat(seen, "\n")
    assert.matches("lookup /w/fine ok", log, 1, true)
    assert.matches("read /w/fine ok", log, 1, true)
    rm(dir)
  end)

  it("mounts from the CLI: --mount HOST:GUEST[:ro] and --memfs", function()
    local dir, ro = util.tmpdir(), util.tmpdir()
    util.write_file(ro .. "/r.txt", "ro")
    local code, out = util.sh(util.gondolin_cmd(("exec --image minimal --mount %s:/w --mount %s:/r:ro " ..
      "--memfs /m -- sh -c 'echo hi > /w/x && cat /r/r.txt && echo m > /m/f && cat /m/f; " ..
      "touch /r/n 2>&1 | grep -c Read-only'"):format(dir, ro)))
    assert.equal(0, code)
    assert.equal("rom\n1\n", out)
    assert.equal("hi\n", util.read_file(dir .. "/x"))
    code, out = util.sh(util.gondolin_cmd("exec --image minimal --mount nope -- true 2>&1"))
    assert.equal(2, code)
    assert.matches("--mount expects HOST:GUEST", out)
    rm(dir)
    rm(ro)
  end)
end)

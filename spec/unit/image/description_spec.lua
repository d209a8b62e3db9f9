-- image/description.lua: one clear error per mistake; a canonical form.
local description = require "gondolin.image.description"

local tmpdir = require("helpers.util").tmpdir

local function err_of(t, dir)
  local ok, err = pcall(description.check, t, "test.lua", dir or ".")
  assert.is_false(ok, "expected an error")
  return err
end

describe("image description", function()
  it("fills in defaults and sorts the package list", function()
    local d = description.check({ name = "img", packages = { "git", "bash", "git" } }, "t.lua", ".")
    assert.equal("latest", d.tag)
    assert.equal("bookworm", d.suite)
    assert.equal("apt", d.variant)
    assert.same({ "bash", "git" }, d.packages)
    assert.equal("auto", d.size)
    assert.is_false(d.docs)
    assert.same({}, d.run)
    assert.same({}, d.env)
  end)

  it("reads file sources relative to the description and hashes them", function()
    local dir = tmpdir()
    local f = assert(io.open(dir .. "/hello.sh", "w"))
    f:write("echo hi\n")
    f:close()
    local d = description.check({ name = "img", files = {
      ["/usr/local/bin/hello"] = { src = "hello.sh", mode = 493 },
      ["/etc/motd"] = "welcome\n",
    } }, "t.lua", dir)
    assert.equal("echo hi\n", d.files["/usr/local/bin/hello"].data)
    assert.equal(493, d.files["/usr/local/bin/hello"].mode)
    assert.equal(420, d.files["/etc/motd"].mode)
    assert.equal(64, #d.files["/etc/motd"].sha256)
    os.execute("rm -rf " .. dir)
  end)

  it("names the field and what is accepted for each mistake", function()
    local cases = {
      { { name = "x", pakages = {} }, "unknown field 'pakages' %(accepted: docs, env, files" },
      { { packages = {} }, "field 'name' is missing" },
      { { name = "Big Name" }, "field 'name' must be lower%-case" },
      { { name = "x", tag = "a/b" }, "field 'tag' must be" },
      { { name = "x", packages = "bash" }, "field 'packages' must be a list of a Debian package name, got string" },
      { { name = "x", packages = { "bash", "Bad_Pkg" } }, "field 'packages' entry 2: Bad_Pkg is not a Debian package name" },
      { { name = "x", packages = { foo = "bar" } }, "field 'packages' must be a list %(no keys%)" },
      { { name = "x", suite = 12 }, "field 'suite' must be a Debian suite name" },
      { { name = "x", variant = "fat" }, "field 'variant': 'fat' is not accepted %(accepted: apt, minbase" },
      { { name = "x", run = { 1 } }, "field 'run' entry 1: 1 is not a shell command string" },
      { { name = "x", env = { ["1X"] = "y" } }, "env: '1X' is not a variable name" },
      { { name = "x", env = { X = 1 } }, "env.X must be a string" },
      { { name = "x", size = "big" }, "field 'size': 'big' is not accepted %(accepted: \"auto\"" },
      { { name = "x", docs = "yes" }, "field 'docs' must be true or false" },
      { { name = "x", mirror = { "http://x" } }, "field 'mirror' entry 1: 'http://x' is not an apt source line" },
      { { name = "x", files = { ["etc/x"] = "" } }, "the key must be an absolute path" },
      { { name = "x", files = { ["/etc/../x"] = "" } }, "without %. or %.%. parts" },
      { { name = "x", files = { ["/proc/x"] = "" } }, "/proc is not part of the image" },
      { { name = "x", files = { ["/tmp"] = "" } }, "/tmp is not part of the image" },
      { { name = "x", files = { ["/a"] = { content = "", src = "y" } } }, "give exactly one of content or src" },
      { { name = "x", files = { ["/a"] = { content = "", owner = 0 } } }, "unknown key 'owner' %(accepted: content, mode, src%)" },
      { { name = "x", files = { ["/a"] = { content = "", mode = 99999 } } }, "mode must be an integer 0..4095" },
      { { name = "x", files = { ["/a"] = { src = "does-not-exist" } } }, "cannot read src" },
      { { name = "x", files = { ["/a"] = 5 } }, "expected a string, { content = s } or { src = path }" },
      { "just a string", "must return a table, got string" },
    }
    for _, c in ipairs(cases) do
      local err = err_of(c[1])
      assert.matches("^gondolin: image description test.lua: ", err)
      assert.matches(c[2], err)
    end
  end)

  it("loads a file in an empty environment and reports its errors", function()
    local dir = tmpdir()
    local function write(name, text)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
      return dir .. "/" .. name
    end
    local d = description.load(write("ok.lua", 'return { name = "ok", packages = { "bash" } }'))
    assert.equal(dir .. "/ok.lua", d.source)
    local ok, err = pcall(description.load, write("io.lua", 'return { name = io.read() }'))
    assert.is_false(ok)
    assert.matches("io.lua", err)
    ok, err = pcall(description.load, write("syntax.lua", 'return { name = }'))
    assert.is_false(ok)
    assert.matches("syntax.lua", err)
    ok, err = pcall(description.load, dir .. "/missing.lua")
    assert.is_false(ok)
    assert.matches("missing.lua", err)
    os.execute("rm -rf " .. dir)
  end)

  it("keeps env out of the root filesystem inputs", function()
    local a = description.check({ name = "x", env = { A = "1" } }, "t", ".")
    local b = description.check({ name = "x", env = { A = "2" } }, "t", ".")
    assert.same(description.rootfs_inputs(a), description.rootfs_inputs(b))
  end)
end)

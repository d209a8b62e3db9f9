-- image/build.lua with a fake root filesystem step: build ids, the store
-- object, the manifest, reuse, and cleanup after a failure.
local build = require "gondolin.image.build"
local description = require "gondolin.image.description"
local store_mod = require "gondolin.image.store"
local files = require "gondolin.files"
local json = require "gondolin.json"
local uv = require "luv"

local tmpdir = require("helpers.util").tmpdir

local function write(path, data)
  assert(files.write_atomic(path, data))
  return path
end

-- Scratch entries this process owns (build-<pid>-...).
local function my_scratch()
  local out = {}
  for _, name in ipairs(files.list(files.scratch_dir())) do
    if name:match("^build%-" .. math.tointeger(uv.os_getpid()) .. "%-") then out[#out + 1] = name end
  end
  return out
end

describe("image build", function()
  local dir, st, kernel, initramfs, calls

  -- The fake step: deterministic bytes from the description's rootfs inputs.
  local function fake_step(ctx)
    calls = calls + 1
    ctx.progress:step(2, 5, "fake rootfs")
    write(ctx.out, json.encode(description.rootfs_inputs(ctx.plan.desc)))
    ctx.packages = { bash = "5.2" }
  end

  local function desc(t)
    t.name = t.name or "img"
    return description.check(t, dir .. "/img.lua", dir)
  end

  local function run(d, extra)
    local opts = { store = st, kernel = kernel, initramfs = initramfs, builder = "test-builder",
                   sources = { "deb http://deb.example.test/debian bookworm main" }, rootfs_step = fake_step,
                   quiet = true }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return build.build(d, opts)
  end

  before_each(function()
    dir = tmpdir()
    st = store_mod.open(dir .. "/store")
    kernel = write(dir .. "/vmlinux", "kernel bytes")
    initramfs = write(dir .. "/initramfs.cpio", "initramfs bytes")
    calls = 0
  end)

  after_each(function()
    files.rm_tree(dir)
  end)

  it("gives the same build id for the same inputs however they are written", function()
    local a = assert(build.plan(desc { packages = { "git", "bash" }, env = { A = "1", B = "2" } },
      { kernel = kernel, initramfs = initramfs, builder = "b", sources = { "deb http://x bookworm main" } }))
    local b = assert(build.plan(desc { packages = { "bash", "git", "bash" }, env = { B = "2", A = "1" } },
      { kernel = kernel, initramfs = initramfs, builder = "b", sources = { "deb http://x bookworm main" } }))
    assert.equal(a.id, b.id)
    assert.equal(32, #a.id)
    assert.matches("^%x+$", a.id)
  end)

  it("changes the id when any input changes, and only the parts it should", function()
    local base = { kernel = kernel, initramfs = initramfs, builder = "b", sources = { "deb http://x bookworm main" } }
    local function plan(t, o)
      local opts = {}
      for k, v in pairs(base) do opts[k] = v end
      for k, v in pairs(o or {}) do opts[k] = v end
      return build.plan(desc(t), opts)
    end
    local ref = plan { packages = { "bash" } }
    local ids = { [ref.id] = "reference" }
    local variants = {
      packages = plan { packages = { "bash", "git" } },
      env = plan { packages = { "bash" }, env = { X = "1" } },
      files = plan { packages = { "bash" }, files = { ["/etc/motd"] = "hi" } },
      run = plan { packages = { "bash" }, run = { "true" } },
      size = plan { packages = { "bash" }, size = "1G" },
      suite = plan({ packages = { "bash" }, suite = "trixie" }),
      sources = plan({ packages = { "bash" } }, { sources = { "deb http://y bookworm main" } }),
      builder = plan({ packages = { "bash" } }, { builder = "c" }),
      kernel = plan({ packages = { "bash" } }, { kernel = write(dir .. "/k2", "other kernel") }),
      refresh = plan({ packages = { "bash" } }, { refresh = "2026-01-01" }),
    }
    for what, p in pairs(variants) do
      assert.is_nil(ids[p.id], what .. " did not change the build id")
      ids[p.id] = what
    end
    -- the rootfs part: env and the kernel do not touch it, the rest does
    assert.equal(ref.rootfs_key, variants.env.rootfs_key)
    assert.equal(ref.rootfs_key, variants.kernel.rootfs_key)
    assert.equal(ref.description_key, variants.refresh.description_key)
    assert.are_not.equal(ref.rootfs_key, variants.refresh.rootfs_key)
    assert.are_not.equal(ref.rootfs_key, variants.packages.rootfs_key)
  end)

  it("stores an object with every artifact hashed in its manifest, and a ref", function()
    local d = desc { packages = { "bash" }, env = { LANG = "C.UTF-8" } }
    local obj, how = run(d)
    assert.equal("built", how)
    assert.equal(1, calls)
    local m = obj.manifest
    assert.equal(obj.build_id, m.build_id)
    assert.equal(obj.build_id, st:ref("img", "latest"))
    assert.same({ LANG = "C.UTF-8" }, m.env)
    assert.same({ bash = "5.2" }, m.packages)
    for kind, file in pairs(store_mod.ARTIFACTS) do
      assert.equal(files.sha256(obj.dir .. "/" .. file), m.artifacts[kind].sha256, kind)
      assert.equal(files.size(obj.dir .. "/" .. file), m.artifacts[kind].size, kind)
    end
    assert.is_true(require("gondolin.image.manifest").verify(obj.dir, m))
    -- the same inputs again: found in the store, nothing built
    local again, how2 = run(desc { packages = { "bash" }, env = { LANG = "C.UTF-8" } })
    assert.equal("cached", how2)
    assert.equal(obj.build_id, again.build_id)
    assert.equal(1, calls)
    assert.same({}, my_scratch())
  end)

  it("writes the same root filesystem bytes for the same inputs", function()
    local a = run(desc { packages = { "bash" } })
    files.rm_tree(st.root)
    local b = run(desc { packages = { "bash" } })
    assert.equal(a.build_id, b.build_id)
    assert.equal(a.manifest.artifacts.rootfs.sha256, b.manifest.artifacts.rootfs.sha256)
  end)

  it("reuses the root filesystem when only the kernel changed", function()
    local a = run(desc { packages = { "bash" } })
    local k2 = write(dir .. "/vmlinux2", "a newer kernel")
    local b, how = run(desc { packages = { "bash" } }, { kernel = k2 })
    assert.equal("built", how)
    assert.are_not.equal(a.build_id, b.build_id)
    assert.equal(1, calls)
    assert.equal(a.manifest.artifacts.rootfs.sha256, b.manifest.artifacts.rootfs.sha256)
    assert.equal(uv.fs_stat(a.rootfs).ino, uv.fs_stat(b.rootfs).ino)   -- hard-linked, not copied
    assert.equal(b.build_id, st:ref("img", "latest"))
  end)

  it("leaves no object, ref or scratch files when a step fails", function()
    local obj, err = run(desc { packages = { "bash" } }, { rootfs_step = function(ctx)
      write(ctx.out, "half a filesystem")
      error({ build_error = "package 'nope' (field 'packages') cannot be installed" }, 0)
    end })
    assert.is_nil(obj)
    assert.matches("^gondolin: image img:latest: package 'nope'", err)
    assert.same({}, st:ids())
    assert.is_nil(st:ref("img", "latest"))
    assert.same({}, my_scratch())
  end)

  it("shows each step as a plain line when not on a terminal", function()
    local lines = {}
    local out = { write = function(_, s) lines[#lines + 1] = s end, flush = function() end }
    local prog = require("gondolin.image.progress").new { title = "img:latest", out = out, tty = false }
    assert(run(desc { packages = { "bash" } }, { progress = prog, quiet = false }))
    local text = table.concat(lines)
    assert.matches("gondolin: image img:latest: %[1/5%] checking", text)
    assert.matches("%[4/5%] adding the kernel and the initramfs", text)
    assert.matches("%[5/5%] hashing and storing", text)
    assert.matches("built %x+ in", text)
    assert.not_matches("\r", text)
  end)

  it("redraws one line with a bar on a terminal", function()
    local chunks = {}
    local out = { write = function(_, s) chunks[#chunks + 1] = s end, flush = function() end }
    local prog = require("gondolin.image.progress").new { title = "t", out = out, tty = true }
    prog:step(1, 2, "one")
    prog:update(0.5, "half way")
    prog:finish("done")
    local text = table.concat(chunks)
    assert.matches("\r\27%[K%[1/2%] one  %[############%-+%]  50%%  half way", text)
    assert.matches("100%%", text)
  end)
end)

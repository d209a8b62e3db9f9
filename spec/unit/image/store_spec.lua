-- image/store.lua: objects, refs, selectors and their errors.
local store_mod = require "gondolin.image.store"
local files = require "gondolin.files"
local json = require "gondolin.json"

local tmpdir = require("helpers.util").tmpdir

-- A complete object made by hand (what a build leaves behind).
local function put_object(st, id, extra)
  local dir = st:object_dir(id)
  assert(files.mkdir_p(dir))
  for _, file in pairs(store_mod.ARTIFACTS) do assert(files.write_atomic(dir .. "/" .. file, file)) end
  local m = { format = 1, build_id = id, name = "x", created = "2026-12-07T00:00:00Z" }
  for k, v in pairs(extra or {}) do m[k] = v end
  assert(files.write_atomic(dir .. "/manifest.json", json.encode(m)))
end

describe("image store", function()
  local root, st
  local A = "aaaa1111bbbb2222cccc3333dddd4444"
  local B = "aaaa1111ffff0000eeee9999dddd8888"

  before_each(function()
    root = tmpdir()
    st = store_mod.open(root)
    put_object(st, A, { rootfs_key = "k1" })
    put_object(st, B)
    assert(st:set_ref("base", "latest", A))
    assert(st:set_ref("base", "v2", B))
    assert(st:set_ref("tools", "latest", B))
  end)

  after_each(function() files.rm_tree(root) end)

  it("resolves name, name:tag, a build id and a unique prefix", function()
    assert.equal(A, (st:lookup("base")))
    assert.equal(B, (st:lookup("base:v2")))
    assert.equal(B, (st:lookup("tools:latest")))
    assert.equal(A, (st:lookup(A)))
    local id, how = st:lookup("aaaa1111bb")
    assert.equal(A, id)
    assert.equal("id", how)
    local _, ref = st:lookup("base:v2")
    assert.same({ name = "base", tag = "v2" }, ref)
  end)

  it("explains selectors that match nothing, or too much", function()
    local cases = {
      { "nope", "no image nope:latest in the store" },
      { "base:v9", "no image base:v9" },
      { "aaaa1111", "build id prefix 'aaaa1111' is ambiguous" },
      { "Bad Name", "is not an image name%[:tag%]" },
      { "a:b:c", "is not an image name%[:tag%]" },
      { "", "empty image selector" },
    }
    for _, c in ipairs(cases) do
      local id, err = st:lookup(c[1])
      assert.is_nil(id, c[1])
      assert.matches(c[2], err)
    end
    -- a short hex string is a name, not a prefix
    assert.matches("no image aaaa:latest", select(2, st:lookup("aaaa")))
    -- a ref to a missing object says so
    assert(st:set_ref("ghost", "latest", "ffffffffffffffffffffffffffffffff"))
    assert.matches("points at build ffff", select(2, st:lookup("ghost")))
  end)

  it("lists refs sorted, with their build ids", function()
    local names = {}
    for _, r in ipairs(st:refs()) do names[#names + 1] = r.name .. ":" .. r.tag .. "=" .. r.id:sub(1, 4) end
    assert.same({ "base:latest=aaaa", "base:v2=aaaa", "tools:latest=aaaa" }, names)
    assert.same({ A, B }, st:ids())
  end)

  it("gives an object's files and refuses a damaged manifest", function()
    local o = assert(st:object(A))
    assert.equal(st:object_dir(A) .. "/rootfs.ext4", o.rootfs)
    assert.equal(A, o.manifest.build_id)
    assert(files.write_atomic(st:object_dir(B) .. "/manifest.json", "{not json"))
    local bad, err = st:object(B)
    assert.is_nil(bad)
    assert.matches("not a gondolin image manifest", err)
  end)

  it("finds an earlier root filesystem by its key", function()
    assert.equal(st:object_dir(A) .. "/rootfs.ext4", (st:find_rootfs("k1")))
    assert.is_nil(st:find_rootfs("k2"))
  end)

  it("removes a ref, and the object only when nothing else points at it", function()
    assert.same({ "base:v2" }, st:remove("base:v2"))
    assert.is_true(st:has(B))                    -- tools:latest still uses it
    assert.same({ "tools:latest", B }, st:remove("tools"))
    assert.is_false(st:has(B))
    local removed = st:remove(A)                 -- by id: every ref goes too
    assert.same({ "base:latest", A }, removed)
    assert.same({}, st:refs())
    assert.same({}, st:ids())
    local none, err = st:remove("base")
    assert.is_nil(none)
    assert.matches("no image base:latest", err)
  end)

  it("keeps the first copy when an object is imported twice", function()
    local dir = root .. "/incoming"
    assert(files.mkdir_p(dir))
    assert(files.write_atomic(dir .. "/manifest.json", "second"))
    assert.is_true(st:import(dir, A))
    assert.is_false(files.exists(dir))
    assert.equal(A, st:manifest(A).build_id)
  end)
end)

-- checkpoint.lua: the metadata trailer, read back strictly.
local checkpoint = require "gondolin.checkpoint"
local files = require "gondolin.files"
local json = require "gondolin.json"

local META = { format = 1, kind = "disk", name = "work", created = "2026-12-07T00:00:00Z",
               build_id = "2d77c71735ad39eef364ba8e8a70c38a", image = "base:latest", disk_bytes = 457179136 }

local function with(changes)
  local m = {}
  for k, v in pairs(META) do m[k] = v end
  for k, v in pairs(changes) do m[k] = v ~= json.null and v or nil end
  return m
end

describe("checkpoint trailer", function()
  it("round-trips the metadata after any amount of disk data", function()
    local blob = ("qcow2 data "):rep(100) .. checkpoint.encode_trailer(META)
    local meta, start = assert(checkpoint.decode_trailer(blob))
    assert.same(META, meta)
    assert.equal(1101, start)
  end)

  it("returns nil and a reason for every malformed trailer", function()
    local good = checkpoint.encode_trailer(META)
    local cases = {
      { "", "too short" },
      { "x" .. string.rep("\0", 11), "no gondolin checkpoint trailer" },
      { good:sub(1, -6) .. "X" .. good:sub(-4), "no gondolin checkpoint trailer" },
      { "{}" .. checkpoint.MAGIC .. string.pack(">I4", 0), "length out of range" },
      { "{}" .. checkpoint.MAGIC .. string.pack(">I4", 1e6), "length out of range" },
      { "{}" .. checkpoint.MAGIC .. string.pack(">I4", 3), "length out of range" },
      { "{x}" .. checkpoint.MAGIC .. string.pack(">I4", 3), "checkpoint metadata: json" },
      { "[1]" .. checkpoint.MAGIC .. string.pack(">I4", 3), "format nil" },
      { checkpoint.encode_trailer(with { format = 2 }), "format 2 %(accepted: 1%)" },
      { checkpoint.encode_trailer(with { kind = "memory" }), "kind memory %(accepted: disk%)" },
      { checkpoint.encode_trailer(with { build_id = json.null }), "lacks build_id" },
      { checkpoint.encode_trailer(with { build_id = "../../etc" }), "malformed build_id" },
      { checkpoint.encode_trailer(with { image = 7 }), "lacks image" },
      { checkpoint.encode_trailer(with { disk_bytes = -1 }), "malformed disk_bytes" },
    }
    for _, c in ipairs(cases) do
      local ok, meta, err = pcall(checkpoint.decode_trailer, c[1])
      assert.is_true(ok)
      assert.is_nil(meta, c[2])
      assert.matches(c[2], err)
    end
  end)

  it("loads only qcow2 files that carry a trailer", function()
    local path = os.tmpname()
    assert(files.write_atomic(path, "QFI\xfb" .. string.rep("\0", 60) .. checkpoint.encode_trailer(META)))
    local ck = assert(checkpoint.load(path))
    assert.equal(META.build_id, ck.build_id)
    assert.equal("base:latest", ck.image)
    assert.is_true(checkpoint.is(ck))
    assert(files.write_atomic(path, "not qcow2" .. checkpoint.encode_trailer(META)))
    local bad, err = checkpoint.load(path)
    assert.is_nil(bad)
    assert.matches("not a qcow2 file", err)
    assert(files.write_atomic(path, "QFI\xfb" .. string.rep("\0", 60)))
    bad, err = checkpoint.load(path)
    assert.is_nil(bad)
    assert.matches("not a checkpoint", err)
    os.remove(path)
    bad, err = checkpoint.load(path)
    assert.is_nil(bad)
    assert.matches("ENOENT", err)
    assert.has_error(function() checkpoint.load(42) end)
  end)
end)

local core = require "gondolin.core"

describe("core.cbor_encode / cbor_decode", function()
  local cases = {
    { "zero", 0 }, { "small uint", 23 }, { "uint8", 24 }, { "uint16", 65535 },
    { "uint32", 4294967295 }, { "uint64", math.maxinteger }, { "negative", -1 },
    { "negative large", -4294967297 }, { "min integer", math.mininteger },
    { "string", "hello" }, { "empty string", "" }, { "binary", "\0\1\255" },
    { "true", true }, { "false", false },
    { "array", { 1, 2, 3 } }, { "nested", { a = { b = { c = "d" } }, list = { "x", "y" } } },
    { "empty map", {} }, { "integer keys", { [10] = "a", [20] = "b" } },
  }
  for _, c in ipairs(cases) do
    it("round-trips " .. c[1], function()
      assert.same(c[2], core.cbor_decode(core.cbor_encode(c[2])))
    end)
  end

  it("uses the shortest encodings", function()
    assert.equal("\x17", core.cbor_encode(23))
    assert.equal("\x18\x18", core.cbor_encode(24))
    assert.equal("\x19\x01\x00", core.cbor_encode(256))
    assert.equal("\x20", core.cbor_encode(-1))
    assert.equal("\x63abc", core.cbor_encode("abc"))
    assert.equal("\x82\x01\x02", core.cbor_encode({ 1, 2 }))
    assert.equal("\xa1\x61\x61\x01", core.cbor_encode({ a = 1 }))
  end)

  it("encodes integral floats as integers and refuses others", function()
    assert.equal("\x03", core.cbor_encode(3.0))
    assert.has_error(function() core.cbor_encode(1.5) end)
  end)

  it("refuses values outside the subset", function()
    assert.has_error(function() core.cbor_encode(print) end)
    assert.has_error(function() core.cbor_encode({ [true] = 1 }) end)
    local deep = {}
    local t = deep
    for _ = 1, 40 do t[1] = {} t = t[1] end
    assert.has_error(function() core.cbor_encode(deep) end)
  end)

  local malformed = {
    { "empty input", "" },
    { "truncated uint16", "\x19\x01" },
    { "truncated text", "\x65ab" },
    { "text length past the end", "\x7a\xff\xff\xff\xffabc" },
    { "array count past the end", "\x9a\xff\xff\xff\xff\x01" },
    { "map count past the end", "\xbb\xff\xff\xff\xff\xff\xff\xff\xff" },
    { "truncated map", "\xa2\x61\x61\x01" },
    { "tag", "\xc0\x01" },
    { "float", "\xfb\0\0\0\0\0\0\0\0" },
    { "half float", "\xf9\0\0" },
    { "undefined", "\xf7" },
    { "simple value", "\xf0" },
    { "indefinite array", "\x9f\x01\xff" },
    { "indefinite text", "\x7f\x61\x61\xff" },
    { "break", "\xff" },
    { "reserved additional info", "\x1c" },
    { "trailing bytes", "\x01\x02" },
    { "nesting too deep", string.rep("\x81", 64) .. "\x01" },
    { "uint above lua range", "\x1b\xff\xff\xff\xff\xff\xff\xff\xff" },
  }
  for _, c in ipairs(malformed) do
    it("rejects " .. c[1] .. " without raising", function()
      local v, err, code = core.cbor_decode(c[2])
      assert.is_nil(v)
      assert.equal("malformed cbor", err)
      assert.equal("malformed", code)
    end)
  end

  it("survives random garbage", function()
    math.randomseed(42)
    for _ = 1, 2000 do
      local n = math.random(0, 40)
      local b = {}
      for i = 1, n do b[i] = string.char(math.random(0, 255)) end
      local ok = pcall(core.cbor_decode, table.concat(b))
      assert.is_true(ok)
    end
  end)
end)

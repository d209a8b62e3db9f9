-- json.lua: deterministic encoding, bounded decoding that never raises.
local json = require "gondolin.json"

describe("json.encode", function()
  it("sorts object keys, so equal tables give equal bytes", function()
    local a = json.encode { b = 1, a = { z = true, y = false }, c = "x" }
    local b = json.encode { c = "x", a = { y = false, z = true }, b = 1 }
    assert.equal(a, b)
    assert.equal('{"a":{"y":false,"z":true},"b":1,"c":"x"}', a)
  end)

  it("writes integers without a fraction and floats that read back equal", function()
    assert.equal("[3,-7,1.5,30.56]", json.encode { 3, -7, 1.5, 30.56 })
    assert.equal("4", json.encode(4.0))
  end)

  it("escapes quotes, backslashes and control bytes and keeps UTF-8", function()
    assert.equal([["a\"b\\c\n\u0001é"]], json.encode("a\"b\\c\n\1é"))
  end)

  it("tells empty arrays from empty objects only when asked", function()
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(json.array()))
    assert.equal("null", json.encode(json.null))
  end)

  it("pretty-prints with an indent and still decodes to the same value", function()
    local v = { list = { 1, 2 }, obj = { k = "v" }, empty = json.array() }
    local text = json.encode(v, { indent = "  " })
    assert.matches('\n  "list": %[\n    1,', text)
    assert.same(json.encode(v), json.encode(json.decode(text)))
  end)

  it("raises on what JSON cannot hold", function()
    local cyc = {}
    cyc.self = cyc
    for _, v in ipairs { { f = print }, cyc, { [1] = 1, [3] = 3 }, { [true] = 1 }, 0 / 0, math.huge } do
      assert.has_error(function() json.encode(v) end)
    end
  end)
end)

describe("json.decode", function()
  it("reads the JSON grammar", function()
    local v = assert(json.decode(' { "a" : [1, -2.5e2, true, false, null, "x\\u00e9\\ud83d\\ude00\\n"], "b": {} } '))
    assert.equal(1, v.a[1])
    assert.equal(-250, v.a[2])
    assert.is_true(v.a[3])
    assert.is_false(v.a[4])
    assert.equal(json.null, v.a[5])
    assert.equal("xé😀\n", v.a[6])
    assert.same({}, v.b)
  end)

  it("returns nil and an error for malformed text, never raising", function()
    local cases = { "", "{", "[1,]", "{\"a\":}", "{a:1}", "01", "1.", ".5", "+1", "\"\1\"", "\"\\x\"",
                    "\"\\ud83d\"", "\"\\ude00\"", "tru", "[1] 2", "{\"a\" 1}", "\"unterminated",
                    string.rep("[", 200) .. string.rep("]", 200), 42 }
    for _, text in ipairs(cases) do
      local ok, v, err = pcall(json.decode, text)
      assert.is_true(ok, tostring(text))
      assert.is_nil(v, tostring(text))
      assert.matches("^json: ", err)
    end
  end)

  it("refuses input above its size limit", function()
    local saved = json.MAX_INPUT
    json.MAX_INPUT = 10
    local v, err = json.decode("[1,2,3,4,5,6]")
    json.MAX_INPUT = saved
    assert.is_nil(v)
    assert.matches("above 10 bytes", err)
  end)

  it("accepts nesting up to its depth limit", function()
    local depth = json.MAX_DEPTH
    assert.is_table(json.decode(string.rep("[", depth) .. string.rep("]", depth)))
    local v, err = json.decode(string.rep("[", depth + 1) .. string.rep("]", depth + 1))
    assert.is_nil(v)
    assert.matches("nesting deeper", err)
  end)
end)

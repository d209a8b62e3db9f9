-- SPDX-License-Identifier: MIT
-- chunked_spec.lua - incremental chunked decoder and encoder (csrc/http/chunked.c)
local core = require "gondolin.core"

-- every way to cut s in two, plus one byte at a time
local function splits(s)
  local out = { {} }
  for i = 1, #s - 1 do out[#out + 1] = { i } end
  local bytes = {}
  for i = 1, #s - 1 do bytes[i] = i end
  out[#out + 1] = bytes
  return out
end

describe("core.http_chunked_decode", function()
  local good = {
    { "one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello" },
    { "several chunks", "3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n", "abcd" },
    { "upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
    { "lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
    { "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello" },
    { "sixteen digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello" },
    { "an extension", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello" },
    { "whitespace before an extension", "5 \t;a=\"b c\"\r\nhello\r\n0\r\n\r\n", "hello" },
    { "trailers", "5\r\nhello\r\n0\r\nX-Trailer: yes\r\nY:\r\n\r\n", "hello" },
    { "an empty body", "0\r\n\r\n", "" },
    { "CRLF inside chunk data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n" },
    { "binary chunk data", "3\r\n\0\255\n\r\n0\r\n\r\n", "\0\255\n" },
  }
  for _, c in ipairs(good) do
    it("decodes " .. c[1] .. " at every split", function()
      for _, cuts in ipairs(splits(c[2])) do
        local data, used, done = core.http_chunked_decode(c[2], 1024, cuts)
        assert.equal(c[3], data)
        assert.equal(#c[2], used)
        assert.is_true(done)
      end
    end)
  end

  it("stops after the body and reports the bytes it used", function()
    local body = "5\r\nhello\r\n0\r\nA: b\r\n\r\n"
    for _, cuts in ipairs(splits(body .. "GET / HTTP/1.1\r\n")) do
      local data, used, done = core.http_chunked_decode(body .. "GET / HTTP/1.1\r\n", 1024, cuts)
      assert.equal("hello", data)
      assert.equal(#body, used)
      assert.is_true(done)
    end
  end)

  local incomplete = {
    { "a missing final CRLF", "5\r\nhello\r\n0\r\n", "hello" },
    { "a final CR without LF", "5\r\nhello\r\n0\r\n\r", "hello" },
    { "a partial chunk", "5\r\nhel", "hel" },
    { "a chunk without its CRLF", "5\r\nhello", "hello" },
    { "an unfinished trailer", "0\r\nX: y\r\n", "" },
    { "nothing", "", "" },
  }
  for _, c in ipairs(incomplete) do
    it("waits for more after " .. c[1], function()
      local data, used, done = core.http_chunked_decode(c[2], 1024)
      assert.equal(c[3], data)
      assert.equal(#c[2], used)
      assert.is_false(done)
    end)
  end

  local bad = {
    { "a huge chunk size", "100000\r\n", 65536 },
    { "a chunk size just above the limit", "401\r\n", 1024 },
    { "a chunk size overflowing 64 bits", "10000000000000000\r\n", math.maxinteger },
    { "seventeen digits with leading zeros", "00000000000000005\r\nhello\r\n0\r\n\r\n", math.maxinteger },
    { "a missing chunk size", "\r\nhello\r\n0\r\n\r\n" },
    { "a non-hex chunk size", "g\r\n" },
    { "a signed chunk size", "-5\r\nhello\r\n" },
    { "a 0x prefix", "0x5\r\nhello\r\n" },
    { "whitespace before the size", " 5\r\nhello\r\n" },
    { "whitespace after the size without an extension", "5 \r\nhello\r\n0\r\n\r\n" },
    { "a bare LF after the size", "5\nhello\r\n0\r\n\r\n" },
    { "a bare CR after the size", "5\rhello\r\n0\r\n\r\n" },
    { "data longer than the size", "5\r\nhello!\r\n0\r\n\r\n" },
    { "a bare LF after the data", "5\r\nhello\n0\r\n\r\n" },
    { "a NUL in an extension", "5;a\0\r\nhello\r\n0\r\n\r\n" },
    { "a size line over 1 KiB", "5;" .. string.rep("x", 1100) .. "\r\nhello\r\n0\r\n\r\n" },
    { "obs-fold in the trailers", "0\r\nX: a\r\n b\r\n\r\n" },
    { "whitespace before a trailer colon", "0\r\nX : a\r\n\r\n" },
    { "a trailer without a colon", "0\r\nX\r\n\r\n" },
    { "an empty trailer name", "0\r\n: a\r\n\r\n" },
    { "a control byte in a trailer value", "0\r\nX: \1\r\n\r\n" },
    { "a bare LF ending the trailers", "0\r\nX: a\r\n\n" },
    { "a bare LF after the last chunk", "0\r\n\n" },
    { "trailers over 8 KiB", "0\r\n" .. string.rep("X: " .. string.rep("a", 100) .. "\r\n", 90) .. "\r\n" },
  }
  for _, c in ipairs(bad) do
    it("rejects " .. c[1] .. " at every split", function()
      for _, cuts in ipairs(splits(c[2])) do
        local data, err, code = core.http_chunked_decode(c[2], c[3] or 1024, cuts)
        assert.is_nil(data)
        assert.is_string(err)
        assert.equal("malformed", code)
      end
    end)
  end

  it("accepts a chunk of exactly max_chunk bytes", function()
    local s = "400\r\n" .. string.rep("z", 1024) .. "\r\n0\r\n\r\n"
    local data, _, done = core.http_chunked_decode(s, 1024)
    assert.equal(1024, #data)
    assert.is_true(done)
  end)

  it("accepts a chunk-size line of exactly 1 KiB", function()
    local line = "5;" .. string.rep("x", 1022)
    local data = core.http_chunked_decode(line .. "\r\nhello\r\n0\r\n\r\n", 1024)
    assert.equal("hello", data)
    assert.is_nil(core.http_chunked_decode(line .. "x\r\nhello\r\n0\r\n\r\n", 1024))
  end)
end)

describe("core.http_chunked_encode", function()
  it("frames data as one chunk", function()
    assert.equal("5\r\nhello\r\n", core.http_chunked_encode("hello"))
    assert.equal("12c\r\n" .. string.rep("x", 300) .. "\r\n", core.http_chunked_encode(string.rep("x", 300)))
  end)

  it("writes the last chunk for empty data", function()
    assert.equal("0\r\n\r\n", core.http_chunked_encode(""))
  end)

  it("round-trips through the decoder", function()
    local parts = { "a", string.rep("b", 4096), "\r\n0\r\n\r\n", "\0" }
    local enc = {}
    for i, p in ipairs(parts) do enc[i] = core.http_chunked_encode(p) end
    enc[#enc + 1] = core.http_chunked_encode("")
    local s = table.concat(enc)
    local data, used, done = core.http_chunked_decode(s, 4096)
    assert.equal(table.concat(parts), data)
    assert.equal(#s, used)
    assert.is_true(done)
  end)
end)

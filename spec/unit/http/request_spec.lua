-- SPDX-License-Identifier: MIT
-- request_spec.lua - strict HTTP/1.x request head parsing (csrc/http/http1.c)
local core = require "gondolin.core"

-- head("GET / HTTP/1.1", "Host: a") -> "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
local function head(...)
  return table.concat({ ... }, "\r\n") .. "\r\n\r\n"
end

local function header(t, name)
  for _, h in ipairs(t.headers) do
    if h[1]:lower() == name:lower() then return h[2] end
  end
end

describe("core.http_parse_request", function()
  local malformed = {
    -- request smuggling shapes
    { "Content-Length and Transfer-Encoding", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked") },
    { "Transfer-Encoding before Content-Length", 400,
      head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Content-Length: 5") },
    { "two equal Content-Length fields", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 5") },
    { "two different Content-Length fields", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Content-Length: 6") },
    { "a Content-Length list", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: 5, 5") },
    { "a Content-Length with a plus sign", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: +5") },
    { "a negative Content-Length", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: -1") },
    { "a Content-Length with inner space", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: 1 0") },
    { "a hexadecimal Content-Length", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: 0x10") },
    { "a Content-Length with trailing junk", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length: 5abc") },
    { "an empty Content-Length", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length:") },
    { "a Content-Length above 2^53", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 9007199254740993") },
    { "a Content-Length that overflows 64 bits", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 99999999999999999999999999") },
    { "another coding before chunked", 501,
      head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked") },
    { "chunked not being the final coding", 400,
      head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, gzip") },
    { "Transfer-Encoding: xchunked", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: xchunked") },
    { "Transfer-Encoding: identity", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: identity") },
    { "chunked twice in one field", 400,
      head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, chunked") },
    { "chunked in two fields", 400,
      head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked") },
    { "a coding with parameters", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked;q=1") },
    { "an empty Transfer-Encoding", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding:") },
    { "Transfer-Encoding in HTTP/1.0", 400, head("POST / HTTP/1.0", "Transfer-Encoding: chunked") },
    { "a vertical tab before chunked", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: \vchunked") },
    { "a space before the colon", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding : chunked") },
    { "a tab before the colon", 400, head("POST / HTTP/1.1", "Host: a", "Content-Length\t: 5") },
    { "obs-fold", 400, head("GET / HTTP/1.1", "Host: a", "X-A: b", " c") },
    { "obs-fold of Transfer-Encoding", 400, head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding:", "\tchunked") },
    { "a Connection option naming Content-Length", 400,
      head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Connection: content-length") },
    -- line endings and bytes
    { "a bare LF after the request line", 400, "GET / HTTP/1.1\nHost: a\r\n\r\n" },
    { "bare LFs ending the head", 400, "GET / HTTP/1.1\r\nHost: a\n\n" },
    { "a bare CR in a field value", 400, head("GET / HTTP/1.1", "Host: a", "X: a\rb") },
    { "a bare CR ending a line", 400, "GET / HTTP/1.1\r\rHost: a\r\n\r\n" },
    { "a NUL in a field value", 400, head("GET / HTTP/1.1", "Host: a", "X: a\0b") },
    { "a NUL in the request-target", 400, head("GET /a\0 HTTP/1.1", "Host: a") },
    { "a DEL in a field value", 400, head("GET / HTTP/1.1", "Host: a", "X: a\127b") },
    { "a leading empty line", 400, "\r\n" .. head("GET / HTTP/1.1", "Host: a") },
    { "an empty field name", 400, head("GET / HTTP/1.1", "Host: a", ": x") },
    { "a field line without a colon", 400, head("GET / HTTP/1.1", "Host: a", "Nonsense") },
    { "a non-token field name", 400, head("GET / HTTP/1.1", "Host: a", "X(y): z") },
    -- request line
    { "HTTP/2.0", 505, head("GET / HTTP/2.0", "Host: a") },
    { "HTTP/1.2", 505, head("GET / HTTP/1.2", "Host: a") },
    { "a lower-case version", 400, head("GET / http/1.1", "Host: a") },
    { "a version with trailing junk", 400, head("GET / HTTP/1.1x", "Host: a") },
    { "an HTTP/0.9 request", 400, "GET /\r\n\r\n" },
    { "a double space in the request line", 400, head("GET  / HTTP/1.1", "Host: a") },
    { "a trailing space after the version", 400, head("GET / HTTP/1.1 ", "Host: a") },
    { "a space inside the target", 400, head("GET /a b HTTP/1.1", "Host: a") },
    { "a non-token method", 400, head("GE(T / HTTP/1.1", "Host: a") },
    { "CONNECT", 501, head("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443") },
    { "authority-form", 400, head("GET example.com:443 HTTP/1.1", "Host: example.com:443") },
    { "asterisk-form with GET", 400, head("GET * HTTP/1.1", "Host: a") },
    { "a fragment in the target", 400, head("GET /a#b HTTP/1.1", "Host: a") },
    { "a bad percent-encoding", 400, head("GET /a%zz HTTP/1.1", "Host: a") },
    { "a truncated percent-encoding", 400, head("GET /a%4 HTTP/1.1", "Host: a") },
    { "a non-ASCII byte in the target", 400, head("GET /\195\169 HTTP/1.1", "Host: a") },
    { "a ws:// target", 400, head("GET ws://a/ HTTP/1.1", "Host: a") },
    -- Host
    { "a missing Host in HTTP/1.1", 400, head("GET / HTTP/1.1", "X: y") },
    { "two Host fields", 400, head("GET / HTTP/1.1", "Host: a", "Host: a") },
    { "two Host fields in HTTP/1.0", 400, head("GET / HTTP/1.0", "Host: a", "Host: b") },
    { "a Host differing from the absolute-form authority", 400,
      head("GET http://a.example/ HTTP/1.1", "Host: b.example") },
    { "a Host differing only by its default port", 400,
      head("GET http://a.example/ HTTP/1.1", "Host: a.example:80") },
    { "an empty Host", 400, head("GET / HTTP/1.1", "Host:") },
    { "a Host with userinfo", 400, head("GET / HTTP/1.1", "Host: user@a.example") },
    { "userinfo in the absolute-form target", 400,
      head("GET http://user:pw@a.example/ HTTP/1.1", "Host: a.example") },
    { "a Host with an empty port", 400, head("GET / HTTP/1.1", "Host: a.example:") },
    { "a Host with port 0", 400, head("GET / HTTP/1.1", "Host: a.example:0") },
    { "a Host with a port above 65535", 400, head("GET / HTTP/1.1", "Host: a.example:65536") },
    { "a Host with a slash", 400, head("GET / HTTP/1.1", "Host: a.example/evil") },
    { "a Host with a comma list", 400, head("GET / HTTP/1.1", "Host: a.example, b.example") },
    { "a Host over 255 bytes", 400, head("GET / HTTP/1.1", "Host: " .. string.rep("a", 256)) },
    { "an IPv6 literal with a zone", 400, head("GET / HTTP/1.1", "Host: [fe80::1%25eth0]") },
    -- other fields
    { "an unknown expectation", 417, head("POST / HTTP/1.1", "Host: a", "Expect: bananas") },
    { "an Upgrade protocol with an empty version", 400,
      head("GET / HTTP/1.1", "Host: a", "Connection: upgrade", "Upgrade: websocket/") },
    -- limits
    { "101 header fields", 431, (function()
        local t = { "GET / HTTP/1.1", "Host: a" }
        for i = 1, 100 do t[#t + 1] = "X-" .. i .. ": v" end
        return head(table.unpack(t))
      end)() },
    { "a header field longer than the head limit", 431,
      head("GET / HTTP/1.1", "Host: a", "X: " .. string.rep("a", 70000)) },
    { "a request line over 8 KiB", 414, head("GET /" .. string.rep("a", 8200) .. " HTTP/1.1", "Host: a") },
  }
  for _, c in ipairs(malformed) do
    it("rejects " .. c[1] .. " with " .. c[2], function()
      local r, err, status = core.http_parse_request(c[3])
      assert.is_nil(r)
      assert.is_string(err)
      assert.equal(c[2], status)
    end)
  end

  local accepted = {
    { "a simple GET", head("GET /a?b=c HTTP/1.1", "Host: example.com", "Accept: */*"),
      { method = "GET", target = "/a?b=c", version = "HTTP/1.1", form = "origin", path = "/a?b=c",
        authority = "example.com", keep_alive = true, body = "none", has_body = false,
        chunked = false, content_length = 0, upgrade = false, expect_continue = false } },
    { "HTTP/1.0 without Host", head("GET / HTTP/1.0"),
      { version = "HTTP/1.0", keep_alive = false, authority = "" } },
    { "HTTP/1.0 keep-alive", head("GET / HTTP/1.0", "Connection: Keep-Alive"), { keep_alive = true } },
    { "HTTP/1.1 Connection: close", head("GET / HTTP/1.1", "Host: a", "Connection: foo, close"),
      { keep_alive = false } },
    { "a POST with a body length", head("POST /up HTTP/1.1", "Host: a", "Content-Length: 5"),
      { body = "length", content_length = 5, has_body = true, chunked = false } },
    { "Content-Length: 0", head("POST / HTTP/1.1", "Host: a", "Content-Length: 0"),
      { body = "none", content_length = 0, has_body = false } },
    { "Content-Length: 2^53", head("POST / HTTP/1.1", "Host: a", "Content-Length: 9007199254740992"),
      { content_length = 9007199254740992 } },
    { "leading zeros in Content-Length", head("POST / HTTP/1.1", "Host: a", "Content-Length: 007"),
      { content_length = 7 } },
    { "a chunked body", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"),
      { body = "chunked", chunked = true, has_body = true } },
    { "chunked in any case with OWS", head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: \t Chunked  "),
      { chunked = true } },
    { "an absolute-form target", head("GET http://a.example:8080/p?q HTTP/1.1", "Host: a.example:8080"),
      { form = "absolute", authority = "a.example:8080", path = "/p?q", https = false } },
    { "an absolute-form https target without a path",
      head("GET HTTPS://A.example HTTP/1.1", "Host: a.EXAMPLE"),
      { form = "absolute", authority = "A.example", path = "", https = true } },
    { "an IPv6 literal Host", head("GET / HTTP/1.1", "Host: [::1]:8080"), { authority = "[::1]:8080" } },
    { "a Host of exactly 255 bytes", head("GET / HTTP/1.1", "Host: " .. string.rep("a", 255)),
      { authority = string.rep("a", 255) } },
    { "an HTTP/1.0 absolute-form target without Host", head("GET http://a.example/x HTTP/1.0"),
      { authority = "a.example", path = "/x", form = "absolute" } },
    { "OPTIONS *", head("OPTIONS * HTTP/1.1", "Host: a"), { form = "asterisk", method = "OPTIONS" } },
    { "an unknown method token", head("PURGE /x HTTP/1.1", "Host: a"), { method = "PURGE" } },
    { "a lower-case method token", head("get / HTTP/1.1", "Host: a"), { method = "get" } },
    { "Expect: 100-continue", head("PUT / HTTP/1.1", "Host: a", "Expect: 100-Continue", "Content-Length: 3"),
      { expect_continue = true } },
    { "Expect: 100-continue in HTTP/1.0", head("PUT / HTTP/1.0", "Expect: 100-continue", "Content-Length: 3"),
      { expect_continue = false } },
    { "a WebSocket upgrade",
      head("GET /ws HTTP/1.1", "Host: a", "Connection: keep-alive, Upgrade", "Upgrade: WebSocket"),
      { upgrade = "websocket" } },
    { "an h2c upgrade", head("GET / HTTP/1.1", "Host: a", "Connection: Upgrade", "Upgrade: h2c"),
      { upgrade = "other" } },
    { "two offered protocols", head("GET / HTTP/1.1", "Host: a", "Connection: upgrade", "Upgrade: websocket, h2c"),
      { upgrade = "other" } },
    { "Upgrade without the Connection option", head("GET / HTTP/1.1", "Host: a", "Upgrade: websocket"),
      { upgrade = false } },
    { "a percent-encoded target", head("GET /a%20b%2F HTTP/1.1", "Host: a"), { target = "/a%20b%2F" } },
  }
  for _, c in ipairs(accepted) do
    it("accepts " .. c[1], function()
      local r, err, status = core.http_parse_request(c[2])
      assert.is_table(r, err)
      assert.is_nil(status)
      assert.equal(#c[2], r.head_len)
      for k, v in pairs(c[3]) do
        assert.same(v, r[k], k)
      end
    end)
  end

  it("returns fields in wire order with OWS trimmed and obs-text kept", function()
    local r = core.http_parse_request(head("GET / HTTP/1.1", "Host: a", "X-A:  one two\t", "x-a: \128\255", "Y:"))
    assert.same({ { "Host", "a" }, { "X-A", "one two" }, { "x-a", "\128\255" }, { "Y", "" } }, r.headers)
  end)

  it("accepts exactly 100 header fields", function()
    local t = { "GET / HTTP/1.1", "Host: a" }
    for i = 1, 99 do t[#t + 1] = "X-" .. i .. ": v" end
    local r = core.http_parse_request(head(table.unpack(t)))
    assert.equal(100, #r.headers)
  end)

  it("accepts a request line of exactly 8 KiB", function()
    local line = "GET /" .. string.rep("a", 8192 - 14) .. " HTTP/1.1"
    assert.equal(8192, #line)
    assert.is_table(core.http_parse_request(head(line, "Host: a")))
    local _, _, status = core.http_parse_request(head(line .. "x", "Host: a"))
    assert.equal(414, status)
  end)

  local valid = {
    head("GET /index.html HTTP/1.1", "Host: example.com", "User-Agent: t", "Accept: */*"),
    head("POST http://a.example/x HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked"),
    head("PUT / HTTP/1.0", "Content-Length: 10"),
  }
  it("needs more at every byte split of a valid head", function()
    for _, s in ipairs(valid) do
      local last = 0
      for i = 0, #s - 1 do
        local r, err = core.http_parse_request(s:sub(1, i))
        assert.is_nil(r)
        assert.equal("need more", err)
        r, err = core.http_parse_request(s:sub(1, i), last)   -- resumed scan
        assert.equal("need more", err)
        last = i
      end
      assert.is_table(core.http_parse_request(s, last))
      assert.equal(#s, core.http_parse_request(s).head_len)
    end
  end)

  it("rejects a broken head as soon as the bad byte arrives", function()
    local cases = {
      { "GET / HTTP/1.1\n", 400 }, { "GET /\0", 400 }, { "GET / HTTP/1.1\r\nHost: a\rx", 400 },
      { "GET /" .. string.rep("a", 8200), 414 }, { "GET / HTTP/1.1\r\nX: " .. string.rep("a", 65536), 431 },
    }
    for _, c in ipairs(cases) do
      local _, _, status = core.http_parse_request(c[1])
      assert.equal(c[2], status)
    end
  end)

  it("fails the same at every split as when whole", function()
    local bad = head("GET / HTTP/1.1", "Host: a", "X: a\0b")
    local last = 0
    for i = 1, #bad do
      local r, err, status = core.http_parse_request(bad:sub(1, i), last)
      assert.is_nil(r)
      if err ~= "need more" then
        assert.equal(400, status)
        assert.is_true(i >= bad:find("\0", 1, true))
        break
      end
      last = i
    end
  end)

  it("reports head_len so pipelined requests parse in turn", function()
    local one = head("POST /1 HTTP/1.1", "Host: a", "Content-Length: 5")
    local two = head("GET /2 HTTP/1.1", "Host: a")
    local three = head("GET /3 HTTP/1.1", "Host: a", "Connection: close")
    local s = one .. "hello" .. two .. three
    local r = core.http_parse_request(s)
    assert.equal(#one, r.head_len)
    assert.equal("hello", s:sub(r.head_len + 1, r.head_len + r.content_length))
    s = s:sub(r.head_len + r.content_length + 1)
    r = core.http_parse_request(s)
    assert.equal("/2", r.target)
    assert.equal(#two, r.head_len)
    r = core.http_parse_request(s:sub(r.head_len + 1))
    assert.equal("/3", r.target)
    assert.is_false(r.keep_alive)
  end)

  it("rejects out-of-range last_len as misuse", function()
    assert.has_error(function() core.http_parse_request("GET", 4) end)
    assert.has_error(function() core.http_parse_request("GET", -1) end)
  end)

  it("survives random garbage without raising", function()
    math.randomseed(7)
    local alphabet = "GET /HTP1.\r\n: aHost,chunkedContent-Length0123456789\0\t "
    for _ = 1, 3000 do
      local b = {}
      for i = 1, math.random(0, 80) do
        local k = math.random(1, #alphabet)
        b[i] = alphabet:sub(k, k)
      end
      local s = table.concat(b)
      local ok, r = pcall(core.http_parse_request, s)
      assert.is_true(ok)
      if r then assert.is_true(r.head_len <= #s) end
    end
  end)
end)

describe("core.http_is_hop_by_hop", function()
  local hdrs = { { "Connection", "x-foo, Keep-Alive" }, { "X-Foo", "1" }, { "X-Bar", "2" } }
  for _, name in ipairs({ "Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                          "Transfer-Encoding", "Upgrade", "Proxy-Authorization",
                          "Proxy-Authenticate", "x-foo", "X-FOO" }) do
    it("treats " .. name .. " as hop-by-hop", function()
      assert.is_true(core.http_is_hop_by_hop(name, hdrs))
    end)
  end
  it("keeps end-to-end fields", function()
    assert.is_false(core.http_is_hop_by_hop("X-Bar", hdrs))
    assert.is_false(core.http_is_hop_by_hop("Host", hdrs))
    assert.is_false(core.http_is_hop_by_hop("x-fo", hdrs))
  end)
end)

describe("core.http_write_request", function()
  it("writes a head that parses back to the same request", function()
    local s = core.http_write_request("POST", "/x?y", { { "Host", "a.example" }, { "Content-Length", "3" } })
    assert.equal("POST /x?y HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\n", s)
    local r = core.http_parse_request(s)
    assert.equal(3, r.content_length)
    assert.equal(#s, r.head_len)
    assert.equal("a.example", header(r, "host"))
  end)

  it("writes HTTP/1.0 heads", function()
    assert.equal("GET / HTTP/1.0\r\n\r\n", core.http_write_request("GET", "/", {}, 0))
  end)

  local bad = {
    { "a CRLF in a value", "GET", "/", { { "X", "a\r\nEvil: 1" } } },
    { "a LF in a value", "GET", "/", { { "X", "a\nb" } } },
    { "a NUL in a value", "GET", "/", { { "X", "a\0" } } },
    { "a space in a name", "GET", "/", { { "X Y", "a" } } },
    { "an empty name", "GET", "/", { { "", "a" } } },
    { "a space in the method", "G T", "/", {} },
    { "a space in the target", "GET", "/a b", {} },
    { "a CRLF in the target", "GET", "/\r\nX: y", {} },
    { "an empty target", "GET", "", {} },
  }
  for _, c in ipairs(bad) do
    it("refuses " .. c[1], function()
      local s, _, code = core.http_write_request(c[2], c[3], c[4])
      assert.is_nil(s)
      assert.equal("invalid", code)
    end)
  end
end)

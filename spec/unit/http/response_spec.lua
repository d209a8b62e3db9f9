-- SPDX-License-Identifier: MIT
-- response_spec.lua - strict HTTP/1.x response head parsing and writing
local core = require "gondolin.core"

local function head(...)
  return table.concat({ ... }, "\r\n") .. "\r\n\r\n"
end

describe("core.http_parse_response", function()
  local accepted = {
    { "a 200 with a length", "GET", head("HTTP/1.1 200 OK", "Content-Length: 3"),
      { status = 200, reason = "OK", version = "HTTP/1.1", body = "length", content_length = 3,
        keep_alive = true, chunked = false } },
    { "a reason phrase with spaces", "GET", head("HTTP/1.1 404 Not Found Here", "Content-Length: 0"),
      { status = 404, reason = "Not Found Here", body = "none" } },
    { "an empty reason after the space", "GET", head("HTTP/1.1 200 ", "Content-Length: 0"), { reason = "" } },
    { "a status line without a reason", "GET", head("HTTP/1.1 200", "Content-Length: 0"), { reason = "" } },
    { "a chunked body", "GET", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
      { body = "chunked", chunked = true, keep_alive = true } },
    { "a body read until close", "GET", head("HTTP/1.1 200 OK", "Content-Type: text/plain"),
      { body = "close", keep_alive = false, has_body = true } },
    { "an HTTP/1.0 body read until close", "GET", head("HTTP/1.0 200 OK", "Connection: keep-alive"),
      { body = "close", keep_alive = false, version = "HTTP/1.0" } },
    { "an HTTP/1.0 keep-alive response", "GET", head("HTTP/1.0 200 OK", "Connection: keep-alive", "Content-Length: 2"),
      { body = "length", keep_alive = true } },
    { "Connection: close", "GET", head("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 2"),
      { keep_alive = false } },
    { "100 Continue", "POST", head("HTTP/1.1 100 Continue"), { status = 100, body = "none" } },
    { "a 103 with a length", "GET", head("HTTP/1.1 103 Early Hints", "Content-Length: 10"), { body = "none" } },
    { "204 No Content", "DELETE", head("HTTP/1.1 204 No Content"), { body = "none", keep_alive = true } },
    { "304 with the representation's length", "GET", head("HTTP/1.1 304 Not Modified", "Content-Length: 100"),
      { body = "none", content_length = 0 } },
    { "a HEAD response with a length", "HEAD", head("HTTP/1.1 200 OK", "Content-Length: 100"),
      { body = "none", has_body = false } },
    { "a HEAD response without framing", "HEAD", head("HTTP/1.1 200 OK"), { body = "none", keep_alive = true } },
    { "a HEAD response with chunked", "HEAD", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
      { body = "none" } },
    { "101 to websocket", "GET",
      head("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade", "Upgrade: websocket"),
      { status = 101, upgrade = "websocket", body = "none" } },
    { "a 599", "GET", head("HTTP/1.1 599 Whatever", "Content-Length: 0"), { status = 599 } },
    { "obs-text in the reason", "GET", head("HTTP/1.1 200 \200K", "Content-Length: 0"), { reason = "\200K" } },
  }
  for _, c in ipairs(accepted) do
    it("accepts " .. c[1], function()
      local r, err = core.http_parse_response(c[3], c[2])
      assert.is_table(r, err)
      assert.equal(#c[3], r.head_len)
      for k, v in pairs(c[4]) do
        assert.same(v, r[k], k)
      end
    end)
  end

  local malformed = {
    { "Content-Length and Transfer-Encoding", head("HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked") },
    { "two Content-Length fields", head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 5") },
    { "a signed Content-Length", head("HTTP/1.1 200 OK", "Content-Length: +5") },
    { "a gzip transfer coding", head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked") },
    { "a coding after chunked", head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip") },
    { "Transfer-Encoding in HTTP/1.0", head("HTTP/1.0 200 OK", "Transfer-Encoding: chunked") },
    { "a two-digit status", head("HTTP/1.1 20 OK") },
    { "a status of 600", head("HTTP/1.1 600 Odd") },
    { "a status of 099", head("HTTP/1.1 099 Odd") },
    { "a status followed by junk", head("HTTP/1.1 200x OK") },
    { "HTTP/2", head("HTTP/2 200 OK") },
    { "HTTP/1.2", head("HTTP/1.2 200 OK") },
    { "a lower-case version", head("http/1.1 200 OK") },
    { "two spaces after the version", head("HTTP/1.1  200 OK") },
    { "a control byte in the reason", head("HTTP/1.1 200 O\1K") },
    { "a space before the colon", head("HTTP/1.1 200 OK", "Content-Length : 5") },
    { "obs-fold", head("HTTP/1.1 200 OK", "X: a", " b") },
    { "a bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n" },
    { "a NUL", head("HTTP/1.1 200 OK", "X: \0") },
    { "101 header fields", (function()
        local t = { "HTTP/1.1 200 OK" }
        for i = 1, 101 do t[#t + 1] = "X-" .. i .. ": v" end
        return head(table.unpack(t))
      end)() },
    { "a head over 64 KiB", head("HTTP/1.1 200 OK", "X: " .. string.rep("a", 70000)) },
  }
  for _, c in ipairs(malformed) do
    it("refuses " .. c[1] .. " with 502", function()
      local r, err, status = core.http_parse_response(c[2], "GET")
      assert.is_nil(r)
      assert.is_string(err)
      assert.equal(502, status)
    end)
  end

  it("needs more at every byte split", function()
    local s = head("HTTP/1.1 200 OK", "Content-Type: text/html", "Transfer-Encoding: chunked")
    local last = 0
    for i = 0, #s - 1 do
      local r, err = core.http_parse_response(s:sub(1, i), "GET", last)
      assert.is_nil(r)
      assert.equal("need more", err)
      last = i
    end
    assert.is_true(core.http_parse_response(s, "GET", last).chunked)
  end)

  it("parses the final response after an interim one", function()
    local s = head("HTTP/1.1 100 Continue") .. head("HTTP/1.1 201 Created", "Content-Length: 2") .. "ok"
    local r = core.http_parse_response(s, "PUT")
    assert.equal(100, r.status)
    local f = core.http_parse_response(s:sub(r.head_len + 1), "PUT")
    assert.equal(201, f.status)
    assert.equal("ok", s:sub(r.head_len + f.head_len + 1))
  end)
end)

describe("core.http_write_response", function()
  it("writes a head that parses back", function()
    local s = core.http_write_response(404, "Not Found", { { "Content-Length", "0" } })
    assert.equal("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", s)
    local r = core.http_parse_response(s, "GET")
    assert.equal(404, r.status)
    assert.equal("Not Found", r.reason)
  end)

  it("keeps the space before an empty reason", function()
    assert.equal("HTTP/1.0 200 \r\n\r\n", core.http_write_response(200, "", {}, 0))
  end)

  for _, c in ipairs({
    { "status 99", 99, "x", {} }, { "status 600", 600, "x", {} },
    { "a CR in the reason", 200, "O\rK", {} }, { "a LF in a value", 200, "OK", { { "X", "\n" } } },
  }) do
    it("refuses " .. c[1], function()
      local s, _, code = core.http_write_response(c[2], c[3], c[4])
      assert.is_nil(s)
      assert.equal("invalid", code)
    end)
  end
end)

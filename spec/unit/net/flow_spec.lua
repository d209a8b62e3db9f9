-- The flow classifier: HTTP request line, TLS ClientHello (with SNI), or reset.
local core = require "gondolin.core"

local function client_hello(sni)
  local ext = ""
  if sni then
    local list = string.pack(">B s2", 0, sni)
    ext = string.pack(">I2 s2", 0, string.pack(">s2", list))
  end
  local body = "\3\3" .. string.rep("\17", 32) .. "\0" .. string.pack(">s2", "\19\1") .. "\1\0" ..
    (sni and string.pack(">s2", ext) or "")
  local hs = "\1" .. string.pack(">I3", #body) .. body
  return "\22\3\1" .. string.pack(">s2", hs)
end

describe("core.flow_classify", function()
  it("recognises HTTP request lines by their method token", function()
    for _, m in ipairs { "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND" } do
      assert.equal("http", (core.flow_classify(m .. " / HTTP/1.1\r\n")))
    end
  end)

  it("waits for more bytes while the method is incomplete", function()
    assert.equal("undecided", core.flow_classify("GE"))
    assert.equal("undecided", core.flow_classify(""))
    assert.equal("undecided", core.flow_classify("\22\3\1\0"))
  end)

  it("refuses CONNECT: the host never tunnels", function()
    local kind, reason = core.flow_classify("CONNECT example.test:443 HTTP/1.1\r\n")
    assert.equal("refused", kind)
    assert.equal("http connect refused", reason)
  end)

  it("refuses protocols that are neither HTTP nor TLS", function()
    for _, s in ipairs { "SSH-2.0-OpenSSH_9.2\r\n", "\0\0\0\1", "  GET /" } do
      local kind = core.flow_classify(s)
      assert.is_true(kind == "refused" or kind == "undecided" and #s < 17, s)
    end
    assert.equal("refused", (core.flow_classify("SSH-2.0-OpenSSH_9.2\r\n")))
    assert.equal("refused", (core.flow_classify(string.rep("A", 5000))))
  end)

  it("parses the SNI of a ClientHello, lower-cased", function()
    local kind, sni = core.flow_classify(client_hello("Api.Example.TEST"))
    assert.equal("tls", kind)
    assert.equal("api.example.test", sni)
    kind, sni = core.flow_classify(client_hello(nil))
    assert.equal("tls", kind)
    assert.equal("", sni)
  end)

  it("waits for the whole first record, then refuses malformed hellos", function()
    local h = client_hello("a.test")
    for i = 1, #h - 1 do assert.equal("undecided", core.flow_classify(h:sub(1, i)), i) end
    local bad = h:sub(1, 6) .. "\255" .. h:sub(8)      -- handshake length past the record
    local kind, reason = core.flow_classify(bad)
    assert.equal("refused", kind)
    assert.equal("malformed tls client hello", reason)
    assert.equal("refused", (core.flow_classify(client_hello("bad name.test"))))
    assert.equal("refused", (core.flow_classify("\22\3\1\0\2\2\0")))   -- not a ClientHello
  end)
end)

-- SPDX-License-Identifier: MIT
-- hostpat_spec.lua - host normalisation, pattern compilation and matching
local core = require "gondolin.core"

describe("core.host_parse", function()
  local ok = {
    { "Example.COM", "name", "example.com" },
    { "example.com.", "name", "example.com" },
    { "a_b-c.example.org", "name", "a_b-c.example.org" },
    { "1e100.net", "name", "1e100.net" },
    { "0x7f.example", "name", "0x7f.example" },
    { "127.1", "ipv4", "127.0.0.1" },
    { "0x7F.1", "ipv4", "127.0.0.1" },
    { "127.0.0.1.", "ipv4", "127.0.0.1" },
    { "[::1]", "ipv6", "::1" },
    { "[::FFFF:7F00:1]", "ipv6", "::ffff:127.0.0.1" },
    { "2606:4700::1", "ipv6", "2606:4700::1" },
  }
  for _, c in ipairs(ok) do
    it("normalises " .. c[1] .. " to " .. c[3], function()
      local kind, norm = core.host_parse(c[1])
      assert.equal(c[2], kind)
      assert.equal(c[3], norm)
    end)
  end

  local bad = {
    { "", "empty" }, { ".", "empty" }, { "a..b", "empty label" }, { ".a.b", "empty label" },
    { "a.b..", "empty label" }, { "exa mple.com", "invalid character" },
    { "ex%41mple.com", "invalid character" }, { "bücher.de", "invalid character" },
    { "a\0b.com", "invalid character" }, { string.rep("a", 64) .. ".com", "63" },
    { string.rep("abcdefghi.", 26), "253" },
    { "1.2.3.4.5", "IPv4" }, { "0.1.2..", "empty label" }, { "127.0.0.1..", "empty label" }, { "999.1.1.1", "IPv4" }, { "0x1g", "IPv4" },
    { "256.256.256.256", "IPv4" }, { "08.1.1.1", "IPv4" }, { "example.123", "IPv4" },
    { "[::1", "IPv6" }, { "::1::", "IPv6" }, { "fe80::1%eth0", "zone" },
    { "[fe80::1%25eth0]", "zone" }, { "[1.2.3.4]", "IPv6" }, { "1.2.3.4:80", "IPv6" },
  }
  for _, c in ipairs(bad) do
    it("refuses " .. ("%q"):format(c[1]) .. " as a host", function()
      local kind, msg, code = core.host_parse(c[1])
      assert.is_nil(kind)
      assert.equal("invalid", code)
      assert.truthy(msg:find(c[2], 1, true), msg)
    end)
  end
end)

describe("core.hostpat_compile", function()
  it("matches exact hosts case-insensitively and ignores a trailing dot", function()
    local hp = core.hostpat_compile { "Example.COM", "api.github.com." }
    assert.equal(1, hp:match("example.com"))
    assert.equal(1, hp:match("EXAMPLE.com."))
    assert.equal(2, hp:match("API.GitHub.com"))
    assert.is_nil(hp:match("www.example.com"))
    assert.is_nil(hp:match("example.co"))
    assert.is_nil(hp:match("xexample.com"))
  end)

  it("matches subdomains with *. but not the apex", function()
    local hp = core.hostpat_compile { "*.example.org" }
    assert.equal(1, hp:match("Foo.Example.Org"))
    assert.equal(1, hp:match("a.b.example.org"))
    assert.is_nil(hp:match("example.org"))
    assert.is_nil(hp:match("badexample.org"))
    assert.is_nil(hp:match("example.org.evil.com"))
  end)

  it("returns the first matching rule and its normalised text", function()
    local hp = core.hostpat_compile { "a.example.com:443", "*.Example.com", "a.example.com" }
    local i, pat = hp:match("a.example.com", 443)
    assert.equal(1, i)
    assert.equal("a.example.com:443", pat)
    i, pat = hp:match("a.example.com", 80)
    assert.equal(2, i)
    assert.equal("*.example.com", pat)
  end)

  it("restricts ports only when the pattern names one", function()
    local hp = core.hostpat_compile { "a.com:8443", "b.com" }
    assert.equal(1, hp:match("a.com", 8443))
    assert.is_nil(hp:match("a.com", 443))
    assert.is_nil(hp:match("a.com"))
    assert.equal(2, hp:match("b.com", 1))
    assert.equal(2, hp:match("b.com", 65535))
    assert.equal(2, hp:match("b.com"))
  end)

  it("compares IP literal patterns as addresses, in any notation", function()
    local hp = core.hostpat_compile { "127.0.0.1:8080", "[::1]:9000", "2001:db8::1" }
    assert.equal(1, hp:match("0x7f.1", 8080))
    assert.equal(1, hp:match("2130706433", 8080))
    assert.equal(2, hp:match("[0:0::1]", 9000))
    assert.equal(3, hp:match("2001:DB8:0:0::1", 1))
    assert.is_nil(hp:match("127.0.0.2", 8080))
    assert.same({ "127.0.0.1:8080", "[::1]:9000", "2001:db8::1" }, hp:patterns())
  end)

  it("reports invalid hosts instead of not matching them", function()
    local hp = core.hostpat_compile { "example.com" }
    local i, msg, code = hp:match("999.1.1.1")
    assert.is_nil(i)
    assert.equal("invalid", code)
    assert.truthy(msg:find("IPv4", 1, true))
  end)

  it("counts its patterns", function()
    assert.equal(0, #core.hostpat_compile {})
    assert.equal(2, #core.hostpat_compile { "a.b", "*.c.d:1" })
  end)

  local bad = {
    { "", "empty pattern" },
    { "*", "alone" },
    { "*:443", "alone" },
    { "a.*.com", "leading" },
    { "*a.com", "leading" },
    { "a*", "leading" },
    { "*.*.com", "leading" },
    { "a..com", "empty label" },
    { "*.", "empty" },
    { "a.com:", "empty port" },
    { "a.com:0", "1..65535" },
    { "a.com:65536", "1..65535" },
    { "a.com:99999999999", "1..65535" },
    { "a.com:http", "not a number" },
    { "a.com:-1", "not a number" },
    { "a b.com", "invalid character" },
    { "*.10.0.0.1", "IP literals" },
    { "*.[::1]", "IP literals" },
    { "999.1.1.1", "IPv4" },
    { "[::1", "unterminated" },
    { "[::1]x", "after ']'" },
    { "[::1]:0", "1..65535" },
    { "fe80::1%eth0", "zone" },
    { string.rep("a", 300), "too long" },
  }
  for _, c in ipairs(bad) do
    it("refuses the pattern " .. ("%q"):format(c[1]) .. " with a clear message", function()
      local ok, err = pcall(core.hostpat_compile, { "fine.example", c[1] })
      assert.is_false(ok)
      assert.truthy(err:find("pattern 2", 1, true), err)
      assert.truthy(err:find(c[2], 1, true), err)
    end)
  end

  it("refuses non-string patterns and oversized lists", function()
    assert.has_error(function() core.hostpat_compile { 42 } end)
    local big = {}
    for i = 1, 4097 do big[i] = "h" .. i .. ".example" end
    assert.has_error(function() core.hostpat_compile(big) end)
    big[4097] = nil
    assert.equal(4096, #core.hostpat_compile(big))
  end)
end)

describe("allow-internal exceptions", function()
  it("take only exact host:port entries", function()
    assert.has_error(function() core.hostpat_compile({ "corp.example" }, "exceptions") end,
      nil)
    local ok, err = pcall(core.hostpat_compile, { "*.corp.example:80" }, "exceptions")
    assert.is_false(ok)
    assert.truthy(err:find("exact", 1, true))
    ok, err = pcall(core.hostpat_compile, { "corp.example" }, "exceptions")
    assert.is_false(ok)
    assert.truthy(err:find("port", 1, true))
  end)

  it("lift the block for that host and port only", function()
    local exc = core.hostpat_compile({ "corp.example:8080", "10.1.2.3:5432" }, "exceptions")
    assert.is_nil(exc:blocked("corp.example", 8080, "10.0.0.1"))
    assert.is_nil(exc:blocked("Corp.Example.", 8080, "127.0.0.1"))
    assert.truthy(exc:blocked("corp.example", 8081, "10.0.0.1"))
    assert.truthy(exc:blocked("other.example", 8080, "10.0.0.1"))
    assert.is_nil(exc:blocked("10.1.2.3", 5432))
    assert.is_nil(exc:blocked("0x0a.0x01.0x0203", 5432))
    assert.truthy(exc:blocked("10.1.2.3", 5433))
    -- an IP entry covers a name that resolves to it, on that port only
    assert.is_nil(exc:blocked("db.corp.example", 5432, "10.1.2.3"))
    assert.truthy(exc:blocked("db.corp.example", 5433, "10.1.2.3"))
    -- public addresses are never blocked
    assert.is_nil(exc:blocked("other.example", 80, "93.184.216.34"))
  end)
end)

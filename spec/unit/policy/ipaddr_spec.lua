-- SPDX-License-Identifier: MIT
-- ipaddr_spec.lua - IP literals in every notation and the blocked ranges
local core = require "gondolin.core"

describe("core.ip_parse", function()
  local cases = {
    { "127.0.0.1", 4, "127.0.0.1" }, { "127.1", 4, "127.0.0.1" },
    { "127.0.1", 4, "127.0.0.1" }, { "2130706433", 4, "127.0.0.1" },
    { "0177.0.0.1", 4, "127.0.0.1" }, { "0x7f.1", 4, "127.0.0.1" },
    { "0x7f000001", 4, "127.0.0.1" }, { "0X7F.0.0.01", 4, "127.0.0.1" },
    { "0x7f.0.0x0.1", 4, "127.0.0.1" }, { "127.0.0.1.", 4, "127.0.0.1" },
    { "0", 4, "0.0.0.0" }, { "0x", 4, "0.0.0.0" }, { "4294967295", 4, "255.255.255.255" },
    { "1.16777215", 4, "1.255.255.255" }, { "1.2.65535", 4, "1.2.255.255" },
    { "00000000000000000000001.2.3.4", 4, "1.2.3.4" },
    { "::", 6, "::" }, { "::1", 6, "::1" }, { "[::1]", 6, "::1" },
    { "0:0:0:0:0:0:0:1", 6, "::1" }, { "::ffff:127.0.0.1", 6, "::ffff:127.0.0.1" },
    { "::ffff:7f00:1", 6, "::ffff:127.0.0.1" }, { "::127.0.0.1", 6, "::7f00:1" },
    { "64:ff9b::7f00:1", 6, "64:ff9b::7f00:1" }, { "64:ff9b::8.8.8.8", 6, "64:ff9b::808:808" },
    { "2001:DB8:0:0:1:0:0:1", 6, "2001:db8::1:0:0:1" }, { "1:0:0:2:0:0:0:3", 6, "1:0:0:2::3" },
    { "1::", 6, "1::" }, { "1:2:3:4:5:6:7::", 6, "1:2:3:4:5:6:7:0" },
    { "::2:3:4:5:6:7:8", 6, "0:2:3:4:5:6:7:8" }, { "1:0:2:3:4:5:6:7", 6, "1:0:2:3:4:5:6:7" },
    { "0001:0002::000a", 6, "1:2::a" }, { "1:2:3:4:5:6:1.2.3.4", 6, "1:2:3:4:5:6:102:304" },
  }
  for _, c in ipairs(cases) do
    it("reads " .. c[1] .. " as " .. c[3], function()
      local fam, canon = core.ip_parse(c[1])
      assert.equal(c[2], fam)
      assert.equal(c[3], canon)
      assert.same({ fam, canon }, { core.ip_parse(canon) })
    end)
  end

  local bad = {
    "", ".", "1.2.3.4.5", "999.1.1.1", "256.0.0.1", "1.2.3.256", "1.2.16777216",
    "4294967296", "0x1g", "08", "09.1.1.1", "1..2", ".1.2", "1.2.3.4..", "1.2.3.4 ",
    " 1.2.3.4", "1.2.3.-4", "+1.2.3.4", "0x100000000", "example.com", "1e3",
    ":::", ":1", "1:", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7",
    "12345::1", "g::1", "::ffff:1.2.3", "::ffff:1.2.3.04", "::ffff:1.2.3.256",
    "::1.2.3.4.5", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4:1", "fe80::1%eth0", "[::1",
    "::1]", "[1.2.3.4]", "[]", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
    string.rep("1", 100),
  }
  for _, s in ipairs(bad) do
    it("refuses " .. ("%q"):format(s), function()
      local fam, msg, code = core.ip_parse(s)
      assert.is_nil(fam)
      assert.equal("invalid", code)
      assert.is_string(msg)
    end)
  end
end)

describe("core.ip_blocked", function()
  local loopback = {
    "127.0.0.1", "127.1", "127.0.1", "0x7f.1", "0177.0.0.1", "2130706433", "0x7f000001",
    "127.0.0.1.", "017700000001", "127.255.255.254", "[::ffff:127.0.0.1]", "::ffff:7f00:1",
    "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::127.0.0.1", "2002:7f00:1::1",
  }
  for _, s in ipairs(loopback) do
    it("blocks " .. s .. " as loopback", function()
      local r = core.ip_blocked(s)
      assert.truthy(r and r:find("loopback", 1, true), r)
    end)
  end

  local blocked = {
    { "0.0.0.0", "this network" }, { "0", "this network" }, { "10.0.0.1", "private" },
    { "100.64.0.1", "CGNAT" }, { "100.127.255.255", "CGNAT" }, { "169.254.169.254", "metadata" },
    { "172.16.0.1", "private" }, { "172.31.255.255", "private" }, { "192.0.0.8", "IETF" },
    { "192.0.2.1", "TEST-NET-1" }, { "192.88.99.1", "6to4 relay" }, { "192.168.1.1", "private" },
    { "198.18.0.1", "benchmarking" }, { "198.19.255.255", "benchmarking" },
    { "198.51.100.7", "TEST-NET-2" }, { "203.0.113.10", "TEST-NET-3" },
    { "224.0.0.1", "multicast" }, { "239.255.255.250", "multicast" },
    { "240.0.0.1", "reserved" }, { "255.255.255.255", "broadcast" },
    { "::", "unspecified" }, { "::1", "loopback" }, { "[::1]", "loopback" },
    { "::ffff:10.0.0.1", "private" }, { "::ffff:169.254.169.254", "metadata" },
    { "::10.0.0.1", "private" }, { "64:ff9b::10.0.0.1", "private" },
    { "64:ff9b:1::1", "local-use NAT64" }, { "64:ff9b:1:ffff::8.8.8.8", "local-use NAT64" },
    { "100::1", "discard" }, { "2001::1", "Teredo" }, { "2001:0:4136:e378::1", "Teredo" },
    { "2001:2::1", "IETF" }, { "2001:1ff::1", "IETF" }, { "2001:db8::1", "documentation" },
    { "2002:a00:1::1", "private" }, { "2002:c0a8:101::1", "private" },
    { "3fff::1", "documentation" }, { "fc00::1", "unique local" },
    { "fd12:3456:789a::1", "unique local" }, { "fe80::1", "link-local" },
    { "febf::1", "link-local" }, { "fec0::1", "site-local" }, { "ff02::1", "multicast" },
    { "::ffff:0:0:1", "non-global" }, { "5f00::1", "non-global" }, { "4000::1", "non-global" },
    { "::ffff:0.0.0.0", "this network" }, { "::ffff:255.255.255.255", "broadcast" },
  }
  for _, c in ipairs(blocked) do
    it("blocks " .. c[1] .. " (" .. c[2] .. ")", function()
      local r = core.ip_blocked(c[1])
      assert.truthy(r and r:find(c[2], 1, true), r)
    end)
  end

  local public = {
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255",
    "172.32.0.0", "192.0.1.1", "192.169.0.1", "198.17.255.255", "198.20.0.0", "223.255.255.255",
    "2606:4700::1", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "::ffff:93.184.216.34",
    "64:ff9b::8.8.8.8", "2002:808:808::1", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1",
    "3ffe::1", "::8.8.8.8",
  }
  for _, s in ipairs(public) do
    it("allows the public address " .. s, function()
      assert.is_nil(core.ip_blocked(s))
    end)
  end

  it("raises for text that is not an IP literal", function()
    assert.has_error(function() core.ip_blocked "zzzz::1" end)
    assert.has_error(function() core.ip_blocked "example.com" end)
  end)
end)

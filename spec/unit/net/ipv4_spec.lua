-- net/ipv4.c: header validation, fragments, addresses, output header.
local F = require "helpers.frames"

local function ping_frame(ip_opts, data)
  return F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 7, 1, data or "hello"), ip_opts)
end

describe("ipv4", function()
  it("accepts a valid datagram with Ethernet padding after it", function()
    local h = F.harness()
    local f = ping_frame({}, "") .. string.rep("\0", 20)
    assert.equal("handled", h:send(f))
    assert.equal(1, #h.out)
  end)

  it("skips header options", function()
    local h = F.harness()
    assert.equal("handled", h:send(ping_frame({ options = "\1\1\1\0" })))
    assert.equal("hello", h:take()[1].icmp.data)
  end)

  it("drops a bad header checksum and counts it", function()
    local h = F.harness()
    assert.equal("malformed", h:send(ping_frame({ checksum = 0x1234 })))
    assert.same({}, h.out)
    assert.equal(1, h.net:stats().bad_checksum)
    assert.equal(1, h.net:stats().dropped)
  end)

  local bad = {
    { "version 6 in an IPv4 frame", { version = 6 } },
    { "IHL below 5", { ihl = 4 } },
    { "IHL beyond the total length", { ihl = 15 } },
    { "total length beyond the frame", { total_len = 200 } },
    { "total length below the header", { total_len = 19 } },
  }
  for _, c in ipairs(bad) do
    it("drops " .. c[1], function()
      local h = F.harness()
      assert.equal("malformed", h:send(ping_frame(c[2])))
      assert.same({}, h.out)
      assert.equal(1, h.net:stats().ip_malformed)
    end)
  end

  it("drops a header cut short", function()
    local h = F.harness()
    local f = ping_frame()
    assert.equal("malformed", h:send(f:sub(1, 14 + 19)))
    assert.equal(1, h.net:stats().ip_malformed)
  end)

  it("uses the total length, not the frame length", function()
    local h = F.harness()
    -- total length covers the ICMP header and 2 data bytes only
    local f = ping_frame({ total_len = 20 + 8 + 2 }, "ab")
    assert.equal("handled", h:send(f .. "garbage"))
    assert.equal("ab", h:take()[1].icmp.data)
  end)

  it("drops fragments (MF set or offset non-zero) and counts them", function()
    local h = F.harness()
    assert.equal("ignored", h:send(ping_frame({ flags = 1 })))          -- MF
    assert.equal("ignored", h:send(ping_frame({ flags = 0, frag = 185 })))
    assert.equal("ignored", h:send(ping_frame({ flags = 2, frag = 1 })))
    assert.same({}, h.out)
    assert.equal(3, h.net:stats().ip_fragments)
  end)

  it("accepts a datagram without DF", function()
    local h = F.harness()
    assert.equal("handled", h:send(ping_frame({ flags = 0 })))
  end)

  it("drops datagrams from sources other than the guest", function()
    local h = F.harness()
    assert.equal("ignored", h:send(ping_frame({ src = "192.168.127.4" })))
    assert.equal("ignored", h:send(ping_frame({ src = "0.0.0.0" })))  -- only UDP may
    assert.same({}, h.out)
  end)

  it("drops unknown protocols", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_ip(47, string.rep("\0", 20))))
    assert.equal(1, h.net:stats().dropped)
  end)

  it("sends IHL 5, DF, TTL 64, a valid checksum and increasing IDs", function()
    local h = F.harness()
    h:send(ping_frame())
    h:send(ping_frame())
    local a, b = table.unpack(h:take())
    for _, p in ipairs { a, b } do
      assert.equal(4, p.ip.version)
      assert.equal(5, p.ip.ihl)
      assert.is_true(p.ip.df)
      assert.is_false(p.ip.mf)
      assert.equal(64, p.ip.ttl)
      assert.is_true(p.ip.csum_ok)
      assert.equal(F.GW_IP, p.ip.src)
      assert.equal(F.GUEST_IP, p.ip.dst)
    end
    assert.equal((a.ip.id + 1) & 0xffff, b.ip.id)
  end)

  it("honours a configured gateway and guest address", function()
    local h = F.harness { gw_ip = "10.0.0.1", guest_ip = "10.0.0.2", netmask = "255.255.255.0" }
    local f = F.eth(F.GW_MAC, F.GUEST_MAC, F.ETH_IPV4, F.ipv4 {
      src = "10.0.0.2", dst = "10.0.0.1", proto = F.PROTO_ICMP, payload = F.icmp(8, 0, 1, 1, "z") })
    local out = h:exchange(f)
    assert.equal(1, #out)
    assert.equal("10.0.0.1", out[1].ip.src)
    assert.equal("10.0.0.2", out[1].ip.dst)
  end)
end)

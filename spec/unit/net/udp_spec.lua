-- net/udp.c: DHCP and DNS only, length and checksum checks, replies.
local F = require "helpers.frames"

local function query() return F.dns_query(1, "example.com") end

describe("udp", function()
  it("drops datagrams to other ports and counts them", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_udp(F.GW_IP, 40000, 123, "ntp?")))
    assert.equal("ignored", h:send(F.guest_udp("8.8.8.8", 40000, 443, "quic")))
    assert.same({}, h.out)
    assert.equal(2, h.net:stats().udp_dropped)
    assert.equal(2, h.net:stats().dropped)
  end)

  it("drops DNS to addresses other than the gateway", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_udp("8.8.8.8", 40000, 53, query())))
    assert.same({}, h.out)
    assert.equal(1, h.net:stats().udp_dropped)
  end)

  it("accepts a datagram without checksum (0)", function()
    local h = F.harness()
    assert.equal("handled", h:send(F.guest_udp(F.GW_IP, 40000, 53, query(), { udp = { checksum = 0 } })))
  end)

  it("drops a bad checksum", function()
    local h = F.harness()
    assert.equal("malformed", h:send(F.guest_udp(F.GW_IP, 40000, 53, query(), { udp = { checksum = 0x1111 } })))
    assert.equal(1, h.net:stats().bad_checksum)
    assert.same({}, h.out)
  end)

  it("drops a length field beyond the datagram or below the header", function()
    local h = F.harness()
    local q = query()
    assert.equal("malformed", h:send(F.guest_udp(F.GW_IP, 40000, 53, q, { udp = { len = 8 + #q + 1, checksum = 0 } })))
    assert.equal("malformed", h:send(F.guest_udp(F.GW_IP, 40000, 53, q, { udp = { len = 7, checksum = 0 } })))
    assert.equal("malformed", h:send(F.guest_ip(F.PROTO_UDP, "\0\1\0")))
    assert.same({}, h.out)
  end)

  it("only lets DHCP through from 0.0.0.0", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_udp(F.GW_IP, 40000, 53, query(), { src = "0.0.0.0" })))
    assert.equal(1, h.net:stats().udp_dropped)
  end)

  it("sends replies with a valid pseudo-header checksum from port 53 to the guest's port", function()
    local h = F.harness()
    local out = h:exchange(F.guest_udp(F.GW_IP, 33333, 53, query()))
    assert.equal(1, #out)
    assert.equal(53, out[1].udp.sport)
    assert.equal(33333, out[1].udp.dport)
    assert.is_true(out[1].udp.csum_ok)
    assert.are_not.equal(0, out[1].udp.checksum)
  end)
end)

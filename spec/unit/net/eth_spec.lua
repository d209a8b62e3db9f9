-- net/eth.c: what reaches the stack at all.
local F = require "helpers.frames"

local function ping()
  return F.icmp(8, 0, 1, 1, "x")
end

describe("eth", function()
  it("drops frames shorter than an Ethernet header", function()
    local h = F.harness()
    for _, len in ipairs { 0, 1, 13 } do
      assert.equal("malformed", h:send(string.rep("\0", len)))
    end
    assert.equal(3, h.net:stats().dropped)
    assert.equal(3, h.net:stats().frames_in)
  end)

  it("drops frames longer than the largest MTU, answers big ones within it", function()
    local h = F.harness()
    local f = F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, string.rep("x", 65520 - 28)))
    assert.equal("malformed", h:send(f .. string.rep("\0", 65538 - #f + 1)))
    assert.same({}, h.out)
    f = F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, string.rep("x", 65520 - 28)))
    assert.equal("handled", h:send(f))
    assert.equal(14 + 65520, #h.out[1])
  end)

  it("drops frames to other MACs, accepts the gateway MAC and broadcast", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, ping(), { eth_dst = "02:11:22:33:44:55" })))
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, ping(), { eth_dst = "01:00:5e:00:00:01" })))
    assert.same({}, h.out)
    assert.equal("handled", h:send(F.guest_ip(F.PROTO_ICMP, ping())))
    assert.equal("handled", h:send(F.guest_ip(F.PROTO_ICMP, ping(), { eth_dst = F.BROADCAST_MAC })))
    assert.equal(2, #h.out)
  end)

  it("drops IPv6 and counts it, whatever the destination MAC", function()
    local h = F.harness()
    local v6 = string.rep("\0", 40)
    assert.equal("ignored", h:send(F.eth("33:33:00:00:00:01", F.GUEST_MAC, F.ETH_IPV6, v6)))
    assert.equal("ignored", h:send(F.eth(F.GW_MAC, F.GUEST_MAC, F.ETH_IPV6, v6)))
    local s = h.net:stats()
    assert.equal(2, s.ipv6_dropped)
    assert.equal(2, s.dropped)
    assert.same({}, h.out)
  end)

  it("drops other ethertypes (VLAN, LLDP)", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.eth(F.GW_MAC, F.GUEST_MAC, 0x8100, string.rep("\0", 46))))
    assert.equal("ignored", h:send(F.eth(F.GW_MAC, F.GUEST_MAC, 0x88cc, string.rep("\0", 46))))
    assert.equal(0, h.net:stats().ipv6_dropped)
    assert.equal(2, h.net:stats().dropped)
  end)

  it("sends from the gateway MAC and counts output frames", function()
    local h = F.harness()
    local out = h:exchange(F.guest_ip(F.PROTO_ICMP, ping()))
    assert.equal(F.GW_MAC, out[1].eth.src)
    assert.equal(F.GUEST_MAC, out[1].eth.dst)
    assert.equal(1, h.net:stats().frames_out)
  end)
end)

-- net/arp.c: who-has for the gateway, nothing else.
local F = require "helpers.frames"

local function arp_frame(op, sha, spa, tha, tpa, eth_dst, eth_src)
  return F.eth(eth_dst or F.BROADCAST_MAC, eth_src or sha, F.ETH_ARP,
    F.arp(op, sha, spa, tha, tpa) .. string.rep("\0", 18))   -- padded to 60 bytes
end

describe("arp", function()
  it("answers a request for the gateway from the guest with the gateway MAC", function()
    local h = F.harness()
    local out = h:exchange(arp_frame(1, F.GUEST_MAC, F.GUEST_IP, "00:00:00:00:00:00", F.GW_IP))
    assert.equal(1, #out)
    local p = out[1]
    assert.same({ dst = F.GUEST_MAC, src = F.GW_MAC, type = F.ETH_ARP }, p.eth)
    assert.equal(2, p.arp.op)
    assert.equal(F.GW_MAC, p.arp.sha)
    assert.equal(F.GW_IP, p.arp.spa)
    assert.equal(F.GUEST_MAC, p.arp.tha)
    assert.equal(F.GUEST_IP, p.arp.tpa)
    assert.equal(1, h.net:stats().arp_replies)
  end)

  it("answers a unicast refresh sent to the gateway MAC", function()
    local h = F.harness()
    local out = h:exchange(arp_frame(1, F.GUEST_MAC, F.GUEST_IP, F.GW_MAC, F.GW_IP, F.GW_MAC))
    assert.equal(1, #out)
  end)

  local ignored = {
    { "a request for another address", 1, F.GUEST_MAC, F.GUEST_IP, "192.168.127.9" },
    { "a gratuitous announcement", 1, F.GUEST_MAC, F.GUEST_IP, F.GUEST_IP },
    { "a gratuitous reply", 2, F.GUEST_MAC, F.GUEST_IP, F.GUEST_IP },
    { "a reply to the gateway", 2, F.GUEST_MAC, F.GUEST_IP, F.GW_IP },
    { "a probe (sender 0.0.0.0)", 1, F.GUEST_MAC, "0.0.0.0", F.GW_IP },
    { "a request from another MAC", 1, "02:00:00:00:00:99", F.GUEST_IP, F.GW_IP },
    { "a request claiming the gateway's address", 1, F.GUEST_MAC, F.GW_IP, F.GW_IP },
  }
  for _, c in ipairs(ignored) do
    it("ignores " .. c[1], function()
      local h = F.harness()
      assert.equal("ignored", h:send(arp_frame(c[2], c[3], c[4], "00:00:00:00:00:00", c[5])))
      assert.same({}, h.out)
      assert.equal(1, h.net:stats().dropped)
    end)
  end

  local garbage = {
    { "truncated", F.arp(1, F.GUEST_MAC, F.GUEST_IP, F.GW_MAC, F.GW_IP):sub(1, 27) },
    { "empty", "" },
    { "non-Ethernet hardware", string.pack(">I2", 6) .. F.arp(1, F.GUEST_MAC, F.GUEST_IP, F.GW_MAC, F.GW_IP):sub(3) },
    { "non-IPv4 protocol", "\0\1\134\221" .. F.arp(1, F.GUEST_MAC, F.GUEST_IP, F.GW_MAC, F.GW_IP):sub(5) },
    { "wrong address lengths", "\0\1\8\0\6\16" .. F.arp(1, F.GUEST_MAC, F.GUEST_IP, F.GW_MAC, F.GW_IP):sub(7) },
  }
  for _, c in ipairs(garbage) do
    it("drops " .. c[1] .. " ARP as malformed", function()
      local h = F.harness()
      assert.equal("malformed", h:send(F.eth(F.BROADCAST_MAC, F.GUEST_MAC, F.ETH_ARP, c[2])))
      assert.same({}, h.out)
      assert.equal(1, h.net:stats().dropped)
    end)
  end
end)

-- net/dhcp.c: one client, one address.
local F = require "helpers.frames"

local function dhcp_frame(o, ip_opts)
  ip_opts = ip_opts or { src = "0.0.0.0", eth_dst = F.BROADCAST_MAC }
  return F.guest_udp(ip_opts.dst or "255.255.255.255", 68, 67, F.dhcp(o), ip_opts)
end

local function be32(ip) return string.pack(">I4", F.ip(ip)) end

describe("dhcp", function()
  it("offers the guest address with every option on DISCOVER, then ACKs the REQUEST", function()
    local h = F.harness()
    local out = h:exchange(dhcp_frame { type = 1, xid = 0xabcdef01, flags = 0x8000 })
    assert.equal(1, #out)
    local p = out[1]
    assert.equal(F.BROADCAST_MAC, p.eth.dst)
    assert.equal(F.GW_IP, p.ip.src)
    assert.equal("255.255.255.255", p.ip.dst)
    assert.equal(67, p.udp.sport)
    assert.equal(68, p.udp.dport)
    assert.is_true(p.udp.csum_ok)
    local d = p.dhcp
    assert.equal(2, d.op)
    assert.equal(0xabcdef01, d.xid)
    assert.equal(0x8000, d.flags)
    assert.equal(F.GUEST_IP, d.yiaddr)
    assert.equal(F.GUEST_MAC, d.chaddr)
    assert.equal(0x63825363, d.cookie)
    assert.equal(2, d.type)                               -- OFFER
    assert.equal(53, d.order[1])
    assert.equal(be32(F.GW_IP), d.options[54])            -- server id
    assert.equal(string.pack(">I4", 86400), d.options[51])
    assert.equal(be32 "255.255.255.0", d.options[1])
    assert.equal(be32(F.GW_IP), d.options[3])             -- router
    assert.equal(be32(F.GW_IP), d.options[6])             -- DNS
    assert.equal(string.pack(">I2", 65520), d.options[26]) -- MTU
    assert.equal(be32 "192.168.127.255", d.options[28])   -- broadcast
    assert.is_true(#p.udp.payload >= 300)

    out = h:exchange(dhcp_frame { type = 3, xid = 0xabcdef02, requested = F.GUEST_IP, server_id = F.GW_IP })
    assert.equal(1, #out)
    d = out[1].dhcp
    assert.equal(5, d.type)                               -- ACK
    assert.equal(0xabcdef02, d.xid)
    assert.equal(F.GUEST_IP, d.yiaddr)
    assert.equal(be32(F.GW_IP), d.options[3])
    assert.equal(2, h.net:stats().dhcp_replies)
  end)

  it("ACKs a renewal (ciaddr, unicast) directly to the guest", function()
    local h = F.harness()
    local out = h:exchange(dhcp_frame({ type = 3, ciaddr = F.GUEST_IP },
      { src = F.GUEST_IP, dst = F.GW_IP }))
    assert.equal(1, #out)
    assert.equal(5, out[1].dhcp.type)
    assert.equal(F.GUEST_IP, out[1].ip.dst)
    assert.equal(F.GUEST_MAC, out[1].eth.dst)
    assert.equal(F.GUEST_IP, out[1].dhcp.ciaddr)
  end)

  it("NAKs a request for another address", function()
    local h = F.harness()
    for _, o in ipairs {
      { type = 3, requested = "192.168.127.50" },
      { type = 3, requested = "10.0.0.3", server_id = F.GW_IP },
      { type = 3 },                                          -- nothing requested
    } do
      local out = h:exchange(dhcp_frame(o))
      assert.equal(1, #out)
      local d = out[1].dhcp
      assert.equal(6, d.type)
      assert.equal("0.0.0.0", d.yiaddr)
      assert.equal(be32(F.GW_IP), d.options[54])
      assert.is_nil(d.options[51])
      assert.equal("255.255.255.255", out[1].ip.dst)
    end
    assert.equal(3, h.net:stats().dhcp_naks)
  end)

  it("ignores a REQUEST for another server, other MACs, relays and RELEASE", function()
    local h = F.harness()
    assert.equal("ignored", h:send(dhcp_frame { type = 3, requested = F.GUEST_IP, server_id = "10.9.9.9" }))
    assert.equal("ignored", h:send(dhcp_frame { type = 1, chaddr = "02:00:00:00:00:02" }))
    assert.equal("ignored", h:send(dhcp_frame { type = 1, giaddr = "10.1.1.1" }))
    assert.equal("ignored", h:send(dhcp_frame { type = 8 }))                -- INFORM
    assert.equal("handled", h:send(dhcp_frame { type = 7 }))                -- RELEASE
    assert.same({}, h.out)
  end)

  local malformed = {
    { "a BOOTREPLY", { op = 2 } },
    { "a bad magic cookie", { cookie = 0x63825364 } },
    { "no end option", { no_end = true } },
    { "no message type", { options = "\255" } },
    { "a message type of length 2", { options = "\53\2\1\1\255" } },
    { "two message types", { options = "\53\1\1\53\1\3\255" } },
    { "a requested address of length 3", { options = "\53\1\3\50\3\1\2\3\255" } },
    { "an option running past the end", { options = "\53\1\1\12\200abc" } },
    { "an option length byte missing", { options = "\53\1\1\12" } },
  }
  for _, c in ipairs(malformed) do
    it("drops " .. c[1] .. " as malformed", function()
      local h = F.harness()
      assert.equal("malformed", h:send(dhcp_frame(c[2])))
      assert.same({}, h.out)
      assert.equal(1, h.net:stats().dhcp_malformed)
    end)
  end

  it("drops a message shorter than BOOTP's fixed part", function()
    local h = F.harness()
    local m = F.dhcp { type = 1 }
    for _, n in ipairs { 0, 1, 235, 239 } do
      assert.equal("malformed", h:send(F.guest_udp("255.255.255.255", 68, 67, m:sub(1, n),
        { src = "0.0.0.0", eth_dst = F.BROADCAST_MAC })))
    end
    assert.equal(4, h.net:stats().dhcp_malformed)
  end)

  it("skips pad options and unknown options", function()
    local h = F.harness()
    local out = h:exchange(dhcp_frame { options = "\0\0\61\7\1\2\0\0\0\0\1\53\1\1\0\255\0\0" })
    assert.equal(1, #out)
    assert.equal(2, out[1].dhcp.type)
  end)

  it("offers the configured MTU and lease", function()
    local h = F.harness { mtu = 1400, lease = 600 }
    local d = h:exchange(dhcp_frame { type = 1 })[1].dhcp
    assert.equal(string.pack(">I2", 1400), d.options[26])
    assert.equal(string.pack(">I4", 600), d.options[51])
  end)
end)

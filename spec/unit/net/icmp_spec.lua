-- net/icmp.c: the gateway answers pings, nothing else does.
local F = require "helpers.frames"

describe("icmp", function()
  it("answers an echo request to the gateway with the same id, sequence and data", function()
    local h = F.harness()
    local data = "abc" .. string.rep("\1\2\3", 100) .. "\255"
    local out = h:exchange(F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 0x1234, 9, data)))
    assert.equal(1, #out)
    local p = out[1]
    assert.equal(F.GW_IP, p.ip.src)
    assert.equal(F.GUEST_IP, p.ip.dst)
    assert.equal(0, p.icmp.type)
    assert.equal(0, p.icmp.code)
    assert.equal(0x1234, p.icmp.id)
    assert.equal(9, p.icmp.seq)
    assert.equal(data, p.icmp.data)
    assert.is_true(p.icmp.csum_ok)
    assert.equal(1, h.net:stats().icmp_echo)
  end)

  it("answers an odd-length payload and a full-MTU ping", function()
    local h = F.harness()
    for _, n in ipairs { 0, 1, 57, 1500 - 28 } do
      local out = h:exchange(F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, n, string.rep("q", n))))
      assert.equal(1, #out)
      assert.equal(n, #out[1].icmp.data)
      assert.is_true(out[1].icmp.csum_ok)
    end
  end)

  it("drops an echo request with a bad checksum", function()
    local h = F.harness()
    assert.equal("malformed", h:send(F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, "x", { checksum = 0xbeef }))))
    assert.same({}, h.out)
    assert.equal(1, h.net:stats().bad_checksum)
    assert.equal(0, h.net:stats().icmp_echo)
  end)

  it("does not answer pings to other addresses", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, "x"), { dst = "8.8.8.8" })))
    assert.same({}, h.out)
  end)

  it("ignores other ICMP messages and a truncated header", function()
    local h = F.harness()
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, F.icmp(0, 0, 1, 1, "x"))))   -- reply
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, F.icmp(3, 3, 0, 0, "x"))))   -- unreachable
    assert.equal("ignored", h:send(F.guest_ip(F.PROTO_ICMP, F.icmp(8, 1, 1, 1, "x"))))   -- code 1
    assert.equal("malformed", h:send(F.guest_ip(F.PROTO_ICMP, "\8\0\0")))
    assert.same({}, h.out)
  end)
end)

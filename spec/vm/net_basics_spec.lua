-- The guest's view of the network: DHCP, gateway, synthetic DNS, dropped UDP.
local gondolin = require "gondolin"

describe("guest network basics", function()
  local vm

  setup(function() vm = gondolin.vm { image = "minimal" } end)
  teardown(function() if vm then vm:close() end end)

  it("configures eth0 from the host's DHCP server at boot", function()
    local r = vm:exec "ip -4 addr show eth0; ip route; cat /etc/resolv.conf; cat /sys/class/net/eth0/mtu"
    assert.equal(0, r.code)
    assert.matches("inet 192%.168%.127%.3/24", r.stdout)
    assert.matches("default via 192%.168%.127%.1 dev eth0", r.stdout)
    assert.matches("nameserver 192%.168%.127%.1", r.stdout)
    assert.matches("\n65520\n$", r.stdout)
    assert.is_true(vm.netif:stats().dhcp_replies >= 2)
  end)

  it("answers ping to the gateway", function()
    local before = vm.netif:stats().icmp_echo
    local r = vm:exec "ping -c 2 -W 2 192.168.127.1"
    assert.equal(0, r.code)
    assert.matches("2 packets received", r.stdout)
    assert.equal(before + 2, vm.netif:stats().icmp_echo)
  end)

  it("gives every name a stable synthetic address", function()
    local function lookup(name)
      local r = vm:exec("nslookup " .. name)
      return r.stdout:match("Name:%s+" .. name:gsub("%.", "%%.") .. "%s+Address:%s+([%d%.]+)")
    end
    local a1, a2, b = lookup "example.test", lookup "example.test", lookup "other.test"
    assert.matches("^198%.1[89]%.", a1)
    assert.equal(a1, a2)
    assert.not_equal(a1, b)
    local r = vm:exec "nslookup -type=AAAA example.test"
    assert.is_nil(r.stdout:match("Address:%s+[%x:]+:[%x:]+\n"))
  end)

  it("drops UDP that is not DNS, and counts it", function()
    local before = vm.netif:stats().udp_dropped
    -- DNS to a port other than 53 is just UDP to somewhere: never answered
    local r = vm:exec "nslookup -port=5353 -timeout=1 -retry=1 example.test 192.168.127.1"
    assert.not_equal(0, r.code)
    assert.matches("no servers could be reached", r.stdout .. r.stderr)
    assert.is_true(vm.netif:stats().udp_dropped >= before + 1)
  end)
end)

-- core.net: configuration, lifetime, callbacks, counters.
local core = require "gondolin.core"
local F = require "helpers.frames"

local function ping() return F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, "x")) end

describe("core.net", function()
  it("checks its options and names the limits", function()
    local bad = {
      { { mtu = 100 }, "mtu must be an integer in 576..1500" },
      { { mtu = 9000 }, "mtu" },
      { { max_tcp = 0 }, "max_tcp" },
      { { max_tcp = 8, max_half_open = 9 }, "max_half_open must be an integer in 1..8" },
      { { tcp_buf = 1 }, "tcp_buf" },
      { { gw_ip = "300.1.1.1" }, "gw_ip must be a dotted%-quad" },
      { { guest_mac = "02:00:00:00:00" }, "guest_mac must be a MAC" },
      { { on_output = 42 }, "callbacks must be functions" },
      { { guest_ip = "10.0.0.3" }, "inconsistent network configuration" },   -- other subnet
      { { guest_ip = "192.168.127.1" }, "inconsistent" },                    -- = gateway
      { { netmask = "255.0.255.0" }, "inconsistent" },
      { { guest_mac = "5a:94:ef:e4:0c:dd" }, "inconsistent" },                -- = gateway MAC
      { { guest_mac = "03:00:00:00:00:01" }, "inconsistent" },                -- multicast
    }
    for _, c in ipairs(bad) do
      local ok, err = pcall(core.net, c[1])
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
    assert.has_error(function() core.net() end)
  end)

  it("starts with zero counters and no timer", function()
    local net = core.net {}
    local s = net:stats()
    for _, k in ipairs { "frames_in", "frames_out", "dropped", "arp_replies", "icmp_echo",
      "dhcp_replies", "dns_queries", "dns_malformed", "udp_dropped", "ipv6_dropped",
      "bad_checksum", "tcp_accepted", "tcp_refused", "tcp_resets_sent", "tcp_retransmits",
      "ip_malformed", "ip_fragments", "dhcp_malformed", "dhcp_naks", "dns_evicted" } do
      assert.equal(0, s[k], k)
    end
    assert.is_nil(net:next_timer())
    net:close()
  end)

  it("keeps frames_in = handled + dropped", function()
    local h = F.harness()
    h:send(ping())
    h:send("junk")
    h:send(F.eth(F.GW_MAC, F.GUEST_MAC, F.ETH_IPV6, ""))
    local s = h.net:stats()
    assert.equal(3, s.frames_in)
    assert.equal(2, s.dropped)
    assert.equal(1, s.frames_out)
  end)

  it("closes once; methods then raise, stats and close still work", function()
    local h = F.harness()
    assert.is_true(h.net:close())
    assert.is_true(h.net:close())
    assert.matches("closed", tostring(h.net))
    assert.has_error(function() h.net:input(ping()) end)
    assert.has_error(function() h.net:timer(0) end)
    assert.has_error(function() h.net:dns_name("1.2.3.4") end)
    assert.is_table(h.net:stats())
  end)

  it("is a to-be-closed value and is collected", function()
    do
      local net <close> = core.net {}
      net:input(ping())
    end
    local weak = setmetatable({ core.net {} }, { __mode = "v" })
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(weak[1])
  end)

  it("survives an on_output that raises, and reports it through on_log", function()
    local logged = {}
    local net = core.net { on_output = function() error("boom") end,
                           on_log = function(msg) logged[#logged + 1] = msg end }
    assert.equal("handled", net:input(ping()))
    assert.equal(1, net:stats().frames_out)
    assert.equal(1, #logged)
    assert.matches("error in net callback: .*boom", logged[1])
  end)

  it("refuses input and timer calls from inside a callback", function()
    local net, inner
    net = core.net { on_output = function()
      inner = { pcall(net.input, net, ping()) }
    end }
    net:input(ping())
    assert.is_false(inner[1])
    assert.matches("cannot be called from a net callback", inner[2])
  end)

  it("defers a close made inside a callback until the call returns", function()
    local net, during
    net = core.net { on_output = function()
      net:close()
      during = tostring(net)
    end }
    assert.equal("handled", net:input(ping()))
    assert.equal("gondolin.net (open)", during)
    assert.equal("gondolin.net (closed)", tostring(net))
    assert.has_error(function() net:input(ping()) end)
  end)

  it("takes the time from input and timer, and keeps it monotonic", function()
    local net = core.net {}
    net:input(ping(), 1000)
    net:timer(500)                                   -- going back is ignored
    assert.has_error(function() net:timer(-1) end)
    assert.has_error(function() net:input(ping(), -5) end)
  end)

  it("validates dns_name's argument", function()
    local net = core.net {}
    assert.has_error(function() net:dns_name("example.com") end)
    assert.is_nil(net:dns_name("198.18.0.1"))
  end)
end)

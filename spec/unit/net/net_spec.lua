-- core.net: configuration, lifetime, callbacks, counters.
local core = require "gondolin.core"
local F = require "helpers.frames"

local function ping() return F.guest_ip(F.PROTO_ICMP, F.icmp(8, 0, 1, 1, "x")) end

describe("core.net", function()
  it("checks its options and names the limits", function()
    local bad = {
      { { mtu = 100 }, "mtu must be an integer in 576..65520" },
      { { mtu = 65521 }, "mtu" },
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

describe("core.net connections", function()
  local DST = "93.184.216.34"

  -- SYN from the guest; returns the decoded replies.
  local function syn(h, sport)
    return h:exchange(F.guest_tcp(DST, sport or 40000, 80, 1000, 0, "S", 65535,
      F.tcp_opts { mss = 1460 }))
  end

  -- Full handshake; returns the conn userdata and our ISN.
  local function open(h, sport)
    local r = syn(h, sport)
    assert(r[1] and r[1].tcp and r[1].tcp.syn, "no SYN-ACK")
    local isn = r[1].tcp.seq
    h:exchange(F.guest_tcp(DST, sport or 40000, 80, 1001, isn + 1, "A", 65535))
    return h.conns[#h.conns], isn
  end

  local function names(h)
    local t = {}
    for i, e in ipairs(h.events) do t[i] = e[2] end
    h.events = {}
    return t
  end

  it("refuses every connection without on_accept (deny by default)", function()
    local out = {}
    local net = core.net { on_output = function(f) out[#out + 1] = F.parse(f) end }
    net:input(F.guest_tcp(DST, 40000, 80, 1000, 0, "S", 65535))
    assert.equal(1, #out)
    assert.is_true(out[1].tcp.rst)
    assert.equal(1, net:stats().tcp_refused)
  end)

  it("refuses when on_accept raises, and logs why", function()
    local logged = {}
    local h = F.harness { on_accept = function() error("nope") end,
                          on_log = function(m) logged[#logged + 1] = m end }
    local r = syn(h)
    assert.is_true(r[1].tcp.rst)
    assert.matches("nope", logged[1])
    assert.is_true(h.conns[1]:closed())
    assert.has_error(function() h.conns[1]:read() end, nil)
  end)

  it("describes a connection with info() and tostring()", function()
    local h = F.harness()
    local conn = open(h, 40123)
    local i = conn:info()
    assert.equal(F.GUEST_IP, i.guest_ip)
    assert.equal(40123, i.guest_port)
    assert.equal(DST, i.dst_ip)
    assert.equal(80, i.dst_port)
    assert.equal("ESTABLISHED", i.state)
    assert.equal("gondolin.tcp_conn (192.168.127.3:40123 -> 93.184.216.34:80)", tostring(conn))
    assert.is_false(conn:closed())
    assert.same({ "established" }, names(h))
  end)

  it("invalidates a connection after its closed event", function()
    local h = F.harness()
    local conn = open(h)
    names(h)
    conn:abort()
    assert.same({ "closed" }, names(h))
    assert.is_true(conn:closed())
    assert.equal("gondolin.tcp_conn (closed)", tostring(conn))
    for _, m in ipairs { "read", "write", "readable", "writable", "shutdown", "abort", "info" } do
      local ok, err = pcall(conn[m], conn, "x")
      assert.is_false(ok, m)
      assert.matches("connection is closed", err)
    end
  end)

  it("aborts a connection whose on_event raises (fail closed)", function()
    local logged = {}
    local h = F.harness { on_event = function(_, ev) if ev == "readable" then error("bad") end end,
                          on_log = function(m) logged[#logged + 1] = m end }
    local conn, isn = open(h)
    local out = h:exchange(F.guest_tcp(DST, 40000, 80, 1001, isn + 1, "PA", 65535, "", "hi"))
    local rst = false
    for _, p in ipairs(out) do rst = rst or (p.tcp and p.tcp.rst) end
    assert.is_true(rst)
    assert.is_true(conn:closed())
    assert.matches("bad", logged[1])
  end)

  it("refuses connection methods inside on_output", function()
    local conn, err
    local net = core.net {
      on_accept = function(c) conn = c return true end,
      on_output = function()
        if conn and not err then err = select(2, pcall(conn.readable, conn)) end
      end,
    }
    net:input(F.guest_tcp(DST, 40000, 80, 1000, 0, "S", 65535))   -- accept, then SYN-ACK
    assert.matches("cannot be called from on_output", err)
  end)

  it("lets on_event read and write, and echoes through the engine", function()
    local h
    h = F.harness { on_event = function(conn, ev)
      if ev == "readable" then conn:write(conn:read():upper()) end
    end }
    local _, isn = open(h)
    local out = h:exchange(F.guest_tcp(DST, 40000, 80, 1001, isn + 1, "PA", 65535, "", "ping"))
    local data = {}
    for _, p in ipairs(out) do if p.tcp then data[#data + 1] = p.tcp.payload end end
    assert.equal("PING", table.concat(data))
  end)

  it("invalidates open connections when the net closes, without callbacks", function()
    local h = F.harness()
    local a = open(h, 40001)
    local b = open(h, 40002)
    names(h)
    h.net:close()
    assert.same({}, names(h))
    assert.is_true(a:closed() and b:closed())
    assert.has_error(function() a:write("x") end)
  end)

  it("closes the net after on_event returns when it asks to close inside", function()
    local h, during
    h = F.harness { on_event = function(conn, ev)
      if ev == "readable" then
        h.net:close()
        during = { tostring(h.net), pcall(conn.read, conn) }
      end
    end }
    local conn, isn = open(h)
    assert.has_no.errors(function()
      h.net:input(F.guest_tcp(DST, 40000, 80, 1001, isn + 1, "PA", 65535, "", "x"))
    end)
    assert.equal("gondolin.net (open)", during[1])     -- freed only on return
    assert.is_false(during[2])                         -- but no longer usable
    assert.matches("connection is closed", during[3])
    assert.equal("gondolin.net (closed)", tostring(h.net))
    assert.is_true(conn:closed())
  end)

  it("keeps its net alive while a connection is referenced", function()
    local h = F.harness()
    local conn = open(h)
    local weak = setmetatable({ h.net }, { __mode = "v" })
    h.net = nil
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_not_nil(weak[1])
    assert.equal("ESTABLISHED", conn:info().state)
  end)
end)

describe("core.net diagnostics", function()
  it("reports the engine's connection state and table gauges", function()
    local h = F.harness()
    local r = h:exchange(F.guest_tcp("10.9.8.7", 40000, 443, 1000, 0, "S", 65535, F.tcp_opts { mss = 1400 }))
    local isn = r[1].tcp.seq
    local g = h.net:tcp_gauges()
    assert.equal(1, g.conns)
    assert.equal(1, g.half_open)
    h:exchange(F.guest_tcp("10.9.8.7", 40000, 443, 1001, isn + 1, "A", 65535))
    local i = h.conns[1]:info()
    assert.equal("ESTABLISHED", i.state)
    assert.equal(isn, i.iss)
    assert.equal(1000, i.irs)
    assert.equal(1001, i.rcv_nxt)
    assert.equal(1400, i.mss)
    assert.is_false(i.ws_ok)
    assert.equal(0, i.send_queued)
    g = h.net:tcp_gauges()
    assert.equal(1, g.conns)
    assert.equal(0, g.half_open)
    assert.equal(0, g.syn_dropped)
  end)
end)

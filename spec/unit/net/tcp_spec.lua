-- tcp.c through core.net: the host as the passive end of guest connections.
--
-- A "peer" plays the guest's TCP: it keeps the guest's next sequence number
-- (p.seq) and what it has received from the host (p.ack), sends segments
-- built by helpers/frames.lua and returns the host's TCP replies decoded.
-- Time is whatever the spec passes: h.now, advanced with at().
local F = require "helpers.frames"

local DST, DPORT = "93.184.216.34", 80

--- The host's TCP segments among decoded output frames (t.ack is the
--- acknowledgement number, t.ack_flag the ACK bit; t.ip the IPv4 header).
local function tcps(out)
  local t = {}
  for _, p in ipairs(out) do
    if p.tcp then
      p.tcp.ip = p.ip
      t[#t + 1] = p.tcp
    end
  end
  return t
end

--- Event names since the last call (optionally only those of @conn).
local function events(h, conn)
  local t = {}
  for _, e in ipairs(h.events) do
    if not conn or e[1] == conn then t[#t + 1] = e[2] end
  end
  h.events = {}
  return t
end

--- Advance the clock to @t and run due timers; the TCP output it caused.
local function at(h, t)
  h.now = t
  h:take()
  h.net:timer(t)
  return tcps(h:take())
end

local Peer = {}
Peer.__index = Peer

--- A guest endpoint. o: sport, isn, wnd (window field), dst, dport.
local function peer(h, o)
  o = o or {}
  return setmetatable({ h = h, sport = o.sport or 40000, dst = o.dst or DST,
    dport = o.dport or DPORT, seq = o.isn or 1000, ack = 0, wnd = o.wnd or 65535 }, Peer)
end

--- Send one segment. flags: "S", "A", "PA", "FA", "R", ... o: seq, ack
--- and wnd overrides (an explicit seq does not advance p.seq), opts
--- (option bytes), csum (break the checksum). Returns the host's TCP replies.
function Peer:send(flags, payload, o)
  o, payload = o or {}, payload or ""
  local seq = o.seq or self.seq
  local frame = F.guest_tcp(self.dst, self.sport, self.dport, seq, o.ack or self.ack,
    flags, o.wnd or self.wnd, o.opts, payload)
  if o.csum then
    frame = frame:sub(1, 50) .. string.char(frame:byte(51) ~ 0xff) .. frame:sub(52)
  end
  if not o.seq then
    local n = #payload
    if flags:find("S") then n = n + 1 end
    if flags:find("F") then n = n + 1 end
    self.seq = (self.seq + n) & 0xffffffff
  end
  return tcps(self.h:exchange(frame, self.h.now))
end

--- Take in-order host data from replies: advance p.ack past data and FIN.
function Peer:take(replies)
  local data = {}
  for _, t in ipairs(replies) do
    if t.seq == self.ack and (#t.payload > 0 or t.fin) then
      data[#data + 1] = t.payload
      self.ack = (self.ack + #t.payload + (t.fin and 1 or 0)) & 0xffffffff
    end
  end
  return table.concat(data)
end

--- Open a connection: SYN (o.mss, o.wscale options), SYN-ACK, ACK.
--- Returns the peer (p.conn, p.iss set) and the SYN-ACK.
local function connect(h, o)
  o = o or {}
  local p = peer(h, o)
  local r = p:send("S", "", { opts = F.tcp_opts { mss = o.mss or 1460, wscale = o.wscale } })
  assert(#r == 1 and r[1].syn and r[1].ack_flag, "expected one SYN-ACK")
  p.iss = r[1].seq
  p.ack = (r[1].seq + 1) & 0xffffffff
  p.synack = r[1]
  p:send("A")
  p.conn = h.conns[#h.conns]
  assert.same({ "established" }, events(h, p.conn))
  return p, r[1]
end

--- Close from our side and let the guest take our FIN (it still has to ACK).
local function close_ours(h, p)
  p.conn:shutdown()
  p:take(tcps(h:take()))
end

local function harness(opts)
  local h = F.harness(opts)
  h.now = 0
  return h
end

describe("tcp handshake", function()
  it("answers a SYN with SYN-ACK carrying MSS and window scale", function()
    local h = harness()
    local p = peer(h, { isn = 5000 })
    local r = p:send("S", "", { opts = F.tcp_opts { mss = 1460, wscale = 7, sack_ok = true, ts = { 1, 0 } } })
    assert.equal(1, #r)
    local t = r[1]
    assert.is_true(t.syn and t.ack_flag and not t.rst and not t.fin)
    assert.is_true(t.csum_ok)
    assert.equal(DST, t.ip.src)
    assert.equal(F.GUEST_IP, t.ip.dst)
    assert.equal(DPORT, t.sport)
    assert.equal(40000, t.dport)
    assert.equal(5001, t.ack)
    assert.equal(65520 - 40, t.options.mss)   -- ours follows our MTU
    assert.is_number(t.options.wscale)
    assert.is_nil(t.options.ts)        -- no timestamps
    assert.is_nil(t.options.sack_ok)   -- no SACK
    assert.equal(1, #h.conns)
    assert.same({}, events(h))
    assert.equal("SYN_RECEIVED", h.conns[1]:info().state)
    p.ack = t.seq + 1
    assert.same({}, p:send("A"))
    assert.same({ "established" }, events(h))
    local i = h.conns[1]:info()
    assert.equal("ESTABLISHED", i.state)
    assert.equal(t.seq, i.iss)
    assert.equal(5000, i.irs)
    assert.equal(5001, i.rcv_nxt)
    assert.is_true(i.ws_ok)
    assert.equal(7, i.snd_wscale)
    assert.equal(t.options.wscale, i.rcv_wscale)
    assert.equal(65535 << 7, i.snd_wnd)         -- the ACK's window is scaled
    assert.equal(1, h.net:stats().tcp_accepted)
  end)

  it("omits window scale when the guest did not offer it; MSS follows the MTU", function()
    local h = harness { mtu = 1400 }
    local _, t = connect(h, { mss = 1460 })
    assert.is_nil(t.options.wscale)
    assert.equal(1360, t.options.mss)
  end)

  it("scales its window once window scaling is agreed", function()
    local h = harness { tcp_buf = 1024 * 1024 }
    local p, t = connect(h, { wscale = 7 })
    assert.equal(5, t.options.wscale)           -- 1 MiB >> 5 fits 16 bits
    assert.equal(65535, t.window)               -- a SYN's window is never scaled
    local r = p:send("PA", "x")
    assert.equal(1, #r)
    assert.equal((1024 * 1024 - 1) >> 5, r[1].window)
  end)

  it("refuses with RST|ACK acknowledging the SYN (and its data)", function()
    local h = harness { on_accept = function() return false end }
    local p = peer(h, { isn = 7000 })
    local r = p:send("S", "")
    assert.equal(1, #r)
    assert.is_true(r[1].rst and r[1].ack_flag and not r[1].syn)
    assert.equal(0, r[1].seq)
    assert.equal(7001, r[1].ack)
    assert.is_true(r[1].csum_ok)
    r = peer(h, { isn = 9000, sport = 40001 }):send("S", "abc")
    assert.equal(9004, r[1].ack)
    assert.same({}, events(h))
    assert.equal(2, h.net:stats().tcp_refused)
    assert.is_nil(h.net:next_timer())
  end)

  it("re-sends the SYN-ACK for a duplicate SYN, with the same ISN", function()
    local h = harness()
    local p = peer(h, { isn = 100 })
    local a = p:send("S")
    local b = p:send("S", "", { seq = 100 })
    assert.equal(1, #b)
    assert.is_true(b[1].syn and b[1].ack_flag)
    assert.equal(a[1].seq, b[1].seq)
    assert.equal(101, b[1].ack)
    assert.equal(1, #h.conns)
  end)

  it("retransmits the SYN-ACK, then gives up after the handshake timeout", function()
    local h = harness()
    local p = peer(h)
    local isn = p:send("S")[1].seq
    local resent = 0
    while h.net:next_timer() and h.net:next_timer() < 10000 do
      local r = at(h, h.net:next_timer())
      assert.equal(1, #r)
      assert.is_true(r[1].syn and r[1].ack_flag)
      assert.equal(isn, r[1].seq)
      resent = resent + 1
    end
    assert.is_true(resent >= 2 and resent <= 4)
    local r = at(h, 10000)
    assert.equal(1, #r)
    assert.is_true(r[1].rst)
    assert.same({ "reset", "closed" }, events(h))
    assert.is_true(h.conns[1]:closed())
    assert.is_nil(h.net:next_timer())
  end)

  it("answers a bad ACK in SYN_RECEIVED with a RST at that ACK", function()
    local h = harness()
    local p = peer(h)
    local isn = p:send("S")[1].seq
    local r = p:send("A", "", { ack = isn + 77 })
    assert.equal(1, #r)
    assert.is_true(r[1].rst and not r[1].ack_flag)
    assert.equal((isn + 77) & 0xffffffff, r[1].seq)
    assert.equal("SYN_RECEIVED", h.conns[1]:info().state)
  end)

  it("ends a handshake on an in-window RST", function()
    local h = harness()
    local p = peer(h)
    p:send("S")
    assert.same({}, p:send("R"))
    assert.same({ "reset", "closed" }, events(h))
    assert.equal(0, h.net:tcp_gauges().conns)
  end)

  it("replaces a half-open connection when a SYN with a new ISN arrives", function()
    local h = harness()
    local p = peer(h, { isn = 100 })
    p:send("S")
    local r = p:send("S", "", { seq = 900000 })
    assert.equal(1, #r)
    assert.is_true(r[1].syn and r[1].ack_flag)
    assert.equal(900001, r[1].ack)
    assert.same({ "reset", "closed" }, events(h))   -- the first attempt
    assert.equal(2, #h.conns)
    assert.equal(1, h.net:tcp_gauges().half_open)
  end)

  it("sends our FIN once established when shut down during the handshake", function()
    local h = harness()
    local p = peer(h)
    local synack = p:send("S")[1]
    h.conns[1]:shutdown()
    assert.same({}, tcps(h:take()))
    p.ack = synack.seq + 1
    local r = p:send("A")
    assert.equal(1, #r)
    assert.is_true(r[1].fin)
    assert.same({ "established" }, events(h))
    assert.equal("FIN_WAIT_1", h.conns[1]:info().state)
  end)

  it("drops segments with a bad checksum", function()
    local h = harness()
    local p = peer(h)
    assert.same({}, p:send("S", "", { csum = true }))
    assert.equal(1, h.net:stats().bad_checksum)
    assert.equal(0, #h.conns)
  end)
end)

describe("tcp data", function()
  it("delivers guest data in order and acknowledges it", function()
    local h = harness()
    local p = connect(h)
    local r = p:send("PA", "hello")
    assert.equal(1, #r)
    assert.is_true(r[1].ack_flag and not r[1].syn)
    assert.equal(p.seq, r[1].ack)
    assert.equal("", r[1].payload)
    assert.same({ "readable" }, events(h))
    assert.equal(5, p.conn:readable())
    assert.equal("hel", p.conn:read(3))
    assert.equal("lo", p.conn:read())
    assert.equal("", p.conn:read())
  end)

  it("sends host data in segments of at most the guest's MSS", function()
    local h = harness()
    local p = connect(h, { mss = 1000 })
    local data = string.rep("0123456789", 300)
    h:take()
    assert.equal(3000, p.conn:write(data))
    local r = tcps(h:take())
    assert.equal(3, #r)
    for i, t in ipairs(r) do
      assert.equal(1000, #t.payload)
      assert.equal((p.iss + 1 + (i - 1) * 1000) & 0xffffffff, t.seq)
      assert.is_true(t.csum_ok)
    end
    assert.is_true(r[3].psh)
    assert.equal(data, p:take(r))
    assert.same({}, p:send("A"))
    assert.same({ "writable" }, events(h))      -- the send buffer emptied
  end)

  it("never sends beyond the guest's window, and resumes when it opens", function()
    local h = harness()
    local p = connect(h, { mss = 1000 })
    p.wnd = 2500
    p:send("A")
    h:take()
    assert.equal(6000, p.conn:write(string.rep("x", 6000)))
    local r = tcps(h:take())
    local got = p:take(r)
    assert.equal(2500, #got)                    -- 1000 + 1000 + 500
    local more = p:take(p:send("A"))
    assert.equal(2500, #more)
    more = p:take(p:send("A"))
    assert.equal(1000, #more)
  end)

  it("takes what fits on a full send buffer and says when there is room again", function()
    local h = harness { tcp_buf = 4096 }
    local p = connect(h, { mss = 1000 })
    p.wnd = 1000
    p:send("A")
    h:take()
    assert.equal(4096, p.conn:write(string.rep("b", 10000)))
    assert.equal(0, p.conn:writable())
    assert.equal(0, p.conn:write("more"))
    assert.equal(1000, #p:take(tcps(h:take())))
    p:send("A")
    assert.same({ "writable" }, events(h))
    assert.equal(1000, p.conn:writable())
  end)

  it("answers an ACK of data never sent with an ACK, and ignores it", function()
    local h = harness()
    local p = connect(h)
    local r = p:send("A", "", { ack = p.ack + 1000 })
    assert.equal(1, #r)
    assert.equal(p.ack, r[1].seq)
    assert.equal(0, p.conn:info().snd_una - p.conn:info().iss - 1)
    assert.equal("ESTABLISHED", p.conn:info().state)
  end)

  it("honours the guest's window scale", function()
    local h = harness()
    local p = connect(h, { mss = 1000, wscale = 2 })
    p.wnd = 300                                 -- 1200 bytes
    p:send("A")
    h:take()
    p.conn:write(string.rep("y", 5000))
    assert.equal(1200, #p:take(tcps(h:take())))
  end)

  it("delivers out-of-order segments once, in order", function()
    local h = harness()
    local p = connect(h)
    local base = p.seq
    local r = p:send("PA", "world", { seq = base + 6 })
    assert.equal(1, #r)
    assert.equal(base, r[1].ack)                -- duplicate ACK: a hole
    assert.same({}, events(h))
    r = p:send("PA", "!", { seq = base + 12 })
    assert.equal(base, r[1].ack)
    assert.equal(2, p.conn:info().ooo_ranges)
    r = p:send("PA", "orld!", { seq = base + 7 })  -- overlaps one, bridges both
    assert.equal(base, r[1].ack)
    assert.equal(1, p.conn:info().ooo_ranges)
    r = p:send("PA", "hello ", { seq = base })
    assert.equal(base + 13, r[1].ack)
    assert.equal(0, p.conn:info().ooo_ranges)
    assert.same({ "readable" }, events(h))
    assert.equal("hello world!!", p.conn:read())
    r = p:send("PA", "world", { seq = base + 6 })  -- all old now
    assert.equal(base + 13, r[1].ack)
    assert.same({}, events(h))
    assert.equal("", p.conn:read())
  end)

  it("keeps held out-of-order bytes in place while the reader empties the buffer", function()
    local h = harness()
    local p = connect(h)
    local base = p.seq
    p:send("PA", "XY", { seq = base + 10 })     -- held beyond a hole
    p:send("PA", "abc", { seq = base })
    assert.equal("abc", p.conn:read())          -- buffer empty, XY still held
    local r = p:send("PA", "defghij", { seq = base + 3 })
    assert.equal(base + 12, r[1].ack)
    assert.equal("defghijXY", p.conn:read())
  end)

  it("ignores duplicate segments and delivers only the new tail of a partial one", function()
    local h = harness()
    local p = connect(h)
    local base = p.seq
    p:send("PA", "abc")
    local r = p:send("PA", "abc", { seq = base })
    assert.equal(1, #r)
    assert.equal(base + 3, r[1].ack)
    assert.same({ "readable" }, events(h))
    p:send("PA", "bcdef", { seq = base + 1 })
    assert.equal("abcdef", p.conn:read())
  end)

  it("trims data beyond its buffer and reopens the window after reads", function()
    local h = harness { tcp_buf = 4096 }
    local p = connect(h, { mss = 1000 })
    local sent, acked, win = 0, nil, nil
    for i = 1, 6 do
      local r = p:send("PA", string.rep(string.char(64 + i), 1000))
      acked, win = r[#r].ack, r[#r].window
      sent = sent + 1000
    end
    assert.equal(6000, sent)
    assert.equal((p.seq - 6000 + 4096) & 0xffffffff, acked)  -- only the buffer's worth
    assert.equal(0, win)
    assert.equal(4096, p.conn:readable())
    h:take()
    local first = p.conn:read(1000)
    assert.equal(string.rep("A", 1000), first)
    assert.same({}, tcps(h:take()))             -- 1000 < MSS: no silly window
    p.conn:read(2000)
    local r = tcps(h:take())
    assert.equal(1, #r)                         -- window update
    assert.equal(3000, r[1].window)
    -- the guest retransmits what was trimmed
    p.seq = acked
    p:send("PA", string.rep("E", 904))
    r = p:send("PA", string.rep("F", 1000))
    assert.equal((acked + 1904) & 0xffffffff, r[1].ack)
    assert.equal(4096 - 3000 + 1904, p.conn:readable())
  end)

  it("never advertises more than it can store, so a full buffer still takes ACKs", function()
    -- Odd-sized segments move rcv_nxt off the scale unit (32 bytes here);
    -- rounding the window up would promise bytes that are then trimmed, and
    -- the guest's ACKs, sent from that edge, would be refused for good.
    local buf = 1024 * 1024
    local h = harness { tcp_buf = buf }
    local p, t = connect(h, { wscale = 7 })
    local unit = 1 << t.options.wscale
    local edge = p.seq + t.window               -- the SYN-ACK's window is unscaled
    local size = 1459
    while true do
      local n = math.min(size, edge - p.seq)
      if n <= 0 then break end
      local r = p:send("PA", string.rep("q", n))
      local last = r[#r]
      assert.equal(p.seq, last.ack)             -- nothing trimmed
      assert.is_true(last.window * unit <= buf - p.conn:readable())
      edge = last.ack + last.window * unit
      size = size == 1459 and 1001 or 1459
    end
    assert.is_true(p.conn:readable() > buf - unit)
    h:take()
    p.conn:write("reply")
    assert.equal("reply", p:take(tcps(h:take())))
    events(h)
    p:send("A")                                 -- from the edge: must be taken
    assert.equal(0, p.conn:info().send_queued)
    assert.same({ "writable" }, events(h))
  end)

  it("handles guest sequence numbers that wrap around 2^32", function()
    local h = harness()
    local p = connect(h, { isn = 0xfffffff0 })
    assert.equal(0xfffffff1, p.seq)
    local r = p:send("PA", string.rep("w", 40))
    assert.equal((0xfffffff1 + 40) & 0xffffffff, r[1].ack)
    assert.equal(25, r[1].ack)
    -- out of order across the wrap point
    local base = p.seq
    p:send("PA", "later", { seq = base + 5 })
    r = p:send("PA", "first", { seq = base })
    assert.equal(base + 10, r[1].ack)
    assert.equal(string.rep("w", 40) .. "firstlater", p.conn:read())
    -- a FIN after the wrap
    p.seq = base + 10
    r = p:send("FA")
    assert.equal(base + 11, r[#r].ack)
    assert.equal("CLOSE_WAIT", p.conn:info().state)
  end)

  it("handles our own sequence numbers wrapping around 2^32", function()
    local h = harness()
    h.net:tcp_isn(0xfffffff0)
    local p = connect(h)
    assert.equal(0xfffffff0, p.iss)
    local data = string.rep("0123456789", 6)        -- crosses 2^32 after 15 bytes
    assert.equal(#data, p.conn:write(data))
    local r = tcps(h:take())
    assert.equal(data, p:take(r))
    assert.equal((0xfffffff1 + #data) & 0xffffffff, p.ack)
    assert.is_true(p.ack < 0xfffffff0)               -- the counter wrapped
    p:send("A")                                      -- ACK past the wrap frees the buffer
    assert.equal(0, p.conn:info().send_queued)
    -- and the FIN after the wrap is acknowledged in sequence
    p.conn:shutdown()
    r = tcps(h:take())
    assert.equal("", p:take(r))
    assert.equal((0xfffffff1 + #data + 1) & 0xffffffff, p.ack)
  end)
end)

describe("tcp close", function()
  it("takes the guest's FIN after its data, then closes from our side", function()
    local h = harness()
    local p = connect(h)
    local r = p:send("PFA", "bye")
    assert.equal(1, #r)
    assert.equal(p.seq, r[1].ack)               -- data + FIN
    assert.same({ "readable", "fin" }, events(h))
    assert.equal("CLOSE_WAIT", p.conn:info().state)
    assert.equal("bye", p.conn:read())
    h:take()
    p.conn:write("ok")
    p.conn:shutdown()
    r = tcps(h:take())
    assert.equal("ok", p:take(r))
    assert.is_true(r[#r].fin)
    assert.equal("LAST_ACK", p.conn:info().state)
    local conn = p.conn
    assert.same({}, p:send("A"))
    assert.same({ "closed" }, events(h))
    assert.is_true(conn:closed())
    assert.is_nil(h.net:next_timer())
  end)

  it("does not take a FIN beyond a hole until the hole is filled", function()
    local h = harness()
    local p = connect(h)
    local base = p.seq
    local r = p:send("FA", "tail", { seq = base + 4 })
    assert.equal(base, r[1].ack)
    assert.same({}, events(h))
    r = p:send("PA", "head", { seq = base })
    assert.equal(base + 9, r[1].ack)
    assert.same({ "readable", "fin" }, events(h))
    assert.equal("headtail", p.conn:read())
  end)

  it("closes actively: FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, then frees the slot", function()
    local h = harness { max_tcp = 1, max_half_open = 1 }
    local p = connect(h)
    h:take()
    p.conn:shutdown()
    local r = tcps(h:take())
    assert.equal(1, #r)
    assert.is_true(r[1].fin and r[1].ack_flag)
    assert.equal("FIN_WAIT_1", p.conn:info().state)
    p:take(r)
    assert.same({}, p:send("A"))
    assert.equal("FIN_WAIT_2", p.conn:info().state)
    p:send("PA", "late data")                   -- half-close: still received
    assert.same({ "readable" }, events(h))
    r = p:send("FA")
    assert.equal(p.seq, r[1].ack)
    assert.same({ "fin" }, events(h))
    assert.equal("TIME_WAIT", p.conn:info().state)
    assert.equal("late data", p.conn:read())
    -- a retransmitted FIN is acknowledged again
    r = p:send("FA", "", { seq = p.seq - 1 })
    assert.equal(1, #r)
    assert.equal(p.seq, r[1].ack)
    local t = h.net:next_timer()
    assert.is_true(t <= h.now + 2000)
    at(h, t)
    assert.same({ "closed" }, events(h))
    assert.is_nil(h.net:next_timer())
    -- the only slot is free again
    local q = connect(h, { sport = 40001 })
    assert.equal("ESTABLISHED", q.conn:info().state)
  end)

  it("keeps a half-closed connection while the guest sends, then times out FIN_WAIT_2", function()
    local h = harness()
    local p = connect(h)
    close_ours(h, p)
    p:send("A")
    assert.equal("FIN_WAIT_2", p.conn:info().state)
    for t = 30000, 150000, 30000 do             -- well past 60 s in total
      h.now = t
      p:send("PA", "more")
      assert.equal("FIN_WAIT_2", p.conn:info().state)
    end
    assert.equal(150000 + 60000, h.net:next_timer())
    events(h)
    local r = at(h, 210000)                     -- 60 s without progress
    assert.is_true(r[1].rst)
    assert.same({ "reset", "closed" }, events(h))
  end)

  it("holds a gracefully closed connection until the embedder read everything", function()
    local h = harness()
    local p = connect(h)
    p:send("PFA", "unread")                     -- guest data and FIN, not read yet
    close_ours(h, p)
    p:send("A")                                 -- acks our FIN: LAST_ACK is done
    assert.equal("TIME_WAIT", p.conn:info().state)
    events(h)
    at(h, 2000)
    at(h, 4000)
    assert.same({}, events(h))                  -- still waiting for the reader
    assert.equal("unread", p.conn:read())
    at(h, h.net:next_timer())
    assert.same({ "closed" }, events(h))
  end)

  it("goes through CLOSING on a simultaneous close", function()
    local h = harness()
    local p = connect(h)
    h:take()
    p.conn:shutdown()
    local fin = tcps(h:take())[1]
    assert.is_true(fin.fin)
    local r = p:send("FA")                      -- ack does not cover our FIN
    assert.equal(p.seq, r[1].ack)
    assert.equal("CLOSING", p.conn:info().state)
    p:take({ fin })
    p:send("A")
    assert.equal("TIME_WAIT", p.conn:info().state)
  end)

  it("lets a SYN with a newer sequence number reuse a 4-tuple in TIME_WAIT", function()
    local h = harness()
    local p = connect(h)
    close_ours(h, p)
    p:send("FA")
    assert.equal("TIME_WAIT", p.conn:info().state)
    events(h)
    local old = p.conn
    assert.same({}, p:send("R"))               -- RFC 1337: ignored
    assert.equal("TIME_WAIT", old:info().state)
    local r = p:send("S", "", { seq = p.seq + 100000 })
    assert.equal(1, #r)
    assert.is_true(r[1].syn and r[1].ack_flag)
    assert.same({ "closed" }, events(h, old))
    assert.equal(2, #h.conns)
  end)

  it("recycles a TIME_WAIT slot for a new SYN when the table is full", function()
    local h = harness { max_tcp = 1, max_half_open = 1 }
    local p = connect(h)
    close_ours(h, p)
    p:send("FA")
    assert.equal("TIME_WAIT", p.conn:info().state)
    events(h)
    local q = connect(h, { sport = 40001 })
    assert.is_true(p.conn:closed())
    assert.equal("ESTABLISHED", q.conn:info().state)
  end)

  it("ends on an exact in-window RST from the guest", function()
    local h = harness()
    local p = connect(h)
    local conn = p.conn
    local r = p:send("R", "", { seq = p.seq + 1000000 })  -- outside: ignored
    assert.same({}, r)
    r = p:send("R", "", { seq = p.seq + 100 })   -- in window, not exact: challenge ACK
    assert.equal(1, #r)
    assert.is_true(r[1].ack_flag and not r[1].rst)
    assert.equal(p.seq, r[1].ack)
    assert.equal("ESTABLISHED", conn:info().state)
    assert.same({}, p:send("R"))
    assert.same({ "reset", "closed" }, events(h))
    assert.is_true(conn:closed())
    -- the flow is gone: an ACK now draws a RST at its ack number
    r = p:send("A", "", { ack = p.ack + 5 })
    assert.equal(1, #r)
    assert.is_true(r[1].rst and not r[1].ack_flag)
    assert.equal((p.ack + 5) & 0xffffffff, r[1].seq)
  end)

  it("answers a challenge ACK to a SYN on an established connection", function()
    local h = harness()
    local p = connect(h)
    local r = p:send("S", "", { seq = p.seq + 3 })
    assert.equal(1, #r)
    assert.is_true(r[1].ack_flag and not r[1].syn and not r[1].rst)
    assert.equal("ESTABLISHED", p.conn:info().state)
  end)

  it("resets segments for unknown flows with RFC 793 ACK semantics", function()
    local h = harness()
    local p = peer(h, { isn = 4242 })
    local r = p:send("A", "", { ack = 99 })
    assert.equal(1, #r)
    assert.is_true(r[1].rst and not r[1].ack_flag)
    assert.equal(99, r[1].seq)
    r = p:send("P", "abcd", { seq = 4242 })     -- no ACK bit
    assert.is_true(r[1].rst and r[1].ack_flag)
    assert.equal(0, r[1].seq)
    assert.equal(4246, r[1].ack)
    r = p:send("F", "xy", { seq = 4242 })       -- FIN counts one
    assert.equal(4245, r[1].ack)
    assert.same({}, p:send("R", "", { seq = 1 }))   -- never answer a RST
    assert.same({}, p:send("RA", "", { seq = 1 }))
    assert.equal(3, h.net:stats().tcp_resets_sent)
    assert.equal(0, #h.conns)
  end)

  it("aborts with a RST and a single closed event", function()
    local h = harness()
    local p = connect(h)
    local conn = p.conn
    h:take()
    conn:abort()
    local r = tcps(h:take())
    assert.equal(1, #r)
    assert.is_true(r[1].rst)
    assert.equal(p.ack, r[1].seq)
    assert.same({ "closed" }, events(h))
    assert.is_true(conn:closed())
  end)

  it("lets an event callback abort its own connection", function()
    local h
    h = harness { on_event = function(conn, ev) if ev == "readable" then conn:abort() end end }
    local p = connect(h)
    h:take()
    local r = p:send("PA", "GET /")
    assert.same({ "readable", "closed" }, events(h))
    local rst = 0
    for _, t in ipairs(r) do if t.rst then rst = rst + 1 end end
    assert.equal(1, rst)
    assert.is_nil(h.net:next_timer())
    connect(h, { sport = 40001 })               -- the table still works
  end)
end)

describe("tcp timers", function()
  it("retransmits a lost segment after the RTO", function()
    local h = harness()
    local p = connect(h)
    h:take()
    p.conn:write("lost")
    local first = tcps(h:take())[1]
    assert.equal("lost", first.payload)
    local t = h.net:next_timer()
    assert.is_true(t > h.now and t <= h.now + 1000)
    assert.same({}, at(h, t - 1))
    local r = at(h, t)
    assert.equal(1, #r)
    assert.equal(first.seq, r[1].seq)
    assert.equal("lost", r[1].payload)
    assert.equal(1, h.net:stats().tcp_retransmits)
    -- exponential backoff: the next wait is twice as long
    assert.equal(2 * t, h.net:next_timer() - t)
    assert.equal("lost", p:take(r))
    assert.same({}, p:send("A"))
    assert.is_true(h.net:next_timer() > h.now + 60000)   -- only the idle timeout
  end)

  it("retransmits on three duplicate ACKs", function()
    local h = harness()
    local p = connect(h, { mss = 100 })
    h:take()
    p.conn:write(string.rep("z", 500))
    local r = tcps(h:take())
    assert.equal(5, #r)
    p:take({ r[1] })                            -- the 2nd segment is "lost"
    p:send("A")
    p:send("A")
    p:send("A")
    local again = p:send("A")
    assert.equal(1, #again)
    assert.equal(r[2].seq, again[1].seq)
    assert.equal(100, #again[1].payload)
    assert.equal(1, h.net:stats().tcp_retransmits)
  end)

  it("gives up after repeated retransmissions: RST, reset, closed", function()
    local h = harness()
    local p = connect(h)
    p.conn:write("void")
    events(h)
    local n, last = 0, nil
    while h.net:next_timer() do
      local r = at(h, h.net:next_timer())
      for _, t in ipairs(r) do
        if t.payload == "void" then n = n + 1 end
        last = t
      end
    end
    assert.equal(8, n)
    assert.is_true(last.rst)
    assert.same({ "reset", "closed" }, events(h))
    assert.is_true(h.now > 60000 and h.now < 600000)
    assert.is_true(p.conn:closed())
  end)

  it("probes a zero window and resumes when it opens", function()
    local h = harness()
    local p = connect(h)
    p.wnd = 0
    p:send("A")
    h:take()
    assert.equal(7, p.conn:write("pending"))
    assert.same({}, tcps(h:take()))             -- nothing fits
    local t1 = h.net:next_timer()
    local r = at(h, t1)
    assert.equal(1, #r)
    assert.equal("p", r[1].payload)             -- one-byte probe
    assert.equal(p.ack, r[1].seq)
    assert.same({}, p:send("A"))                -- still zero: keep probing
    local t2 = h.net:next_timer()
    assert.is_true(t2 - t1 > t1 - 0)            -- with backoff
    r = at(h, t2)
    assert.equal("p", r[1].payload)
    p.wnd = 65535
    r = p:send("A")                             -- window update
    assert.equal("pending", p:take(r))
    assert.is_true(r[#r].psh)
    p:send("A")
    assert.is_true(h.net:next_timer() > h.now + 60000)
  end)

  it("gives up when window probes draw no answer", function()
    local h = harness()
    local p = connect(h)
    p.wnd = 0
    p:send("A")
    p.conn:write("stuck")
    events(h)
    local probes, last = 0, nil
    while h.net:next_timer() and h.net:next_timer() < 600000 do
      for _, t in ipairs(at(h, h.net:next_timer())) do
        if #t.payload == 1 then probes = probes + 1 end
        last = t
      end
    end
    assert.equal(8, probes)
    assert.is_true(last.rst)
    assert.same({ "reset", "closed" }, events(h))
  end)

  it("resets an established connection after the idle timeout", function()
    local h = harness()
    local p = connect(h)
    local t = h.net:next_timer()
    assert.equal(600000, t)
    p:send("PA", "keep")                        -- progress moves it
    h.now = 1000
    p:send("PA", "alive")
    assert.equal(601000, h.net:next_timer())
    local r = at(h, 601000)
    assert.equal(1, #r)
    assert.is_true(r[1].rst)
    assert.same({ "readable", "readable", "reset", "closed" }, events(h))
  end)

  it("bounds half-open connections under a SYN flood and recovers", function()
    local h = harness { max_half_open = 128 }
    local synacks = 0
    for i = 1, 10000 do
      local f = F.guest_tcp(DST, 1024 + i, DPORT, i * 7919, 0, "S", 65535)
      h:send(f, 0)
      for _, p in ipairs(h:take()) do
        if p.tcp and p.tcp.syn then synacks = synacks + 1 end
      end
    end
    assert.equal(128, synacks)
    assert.equal(128, #h.conns)
    local s = h.net:stats()
    assert.equal(128, s.tcp_accepted)
    assert.equal(10000 - 128, s.dropped)
    local g = h.net:tcp_gauges()
    assert.equal(128, g.conns)
    assert.equal(128, g.half_open)
    assert.equal(10000 - 128, g.syn_dropped)
    assert.equal(0, g.buf_bytes)                -- a handshake costs no buffer
    -- a legitimate SYN now is dropped too...
    local legit = peer(h, { sport = 50000 })
    assert.same({}, legit:send("S"))
    -- ...until the handshake timeout frees the half-open slots
    at(h, 10000)
    local closed = 0
    for _, e in ipairs(h.events) do if e[2] == "closed" then closed = closed + 1 end end
    assert.equal(128, closed)
    h.events = {}
    g = h.net:tcp_gauges()
    assert.equal(0, g.conns)
    assert.equal(0, g.half_open)
    h.now = 10000
    local p = connect(h, { sport = 50000 })
    assert.equal("ESTABLISHED", p.conn:info().state)
  end)

  it("allocates buffers only for directions that carry data, and frees them", function()
    local h = harness { tcp_buf = 8192 }
    local p = connect(h)
    assert.equal(0, h.net:tcp_gauges().buf_bytes)
    p:send("PA", "in")
    assert.equal(8192, h.net:tcp_gauges().buf_bytes)
    p.conn:write("out")
    assert.equal(16384, h.net:tcp_gauges().buf_bytes)
    p.conn:abort()
    assert.equal(0, h.net:tcp_gauges().buf_bytes)
    assert.equal(0, h.net:tcp_gauges().conns)
  end)
end)

describe("tcp per-VM bounds", function()
  local function limits(logs)
    local out = {}
    for _, l in ipairs(logs) do
      local name = l:match("^limit: (%S+)$")
      if name then out[#out + 1] = name end
    end
    return out
  end

  it("names the bound that refused a SYN: the half-open table, the flow table", function()
    local logs = {}
    local h = harness { max_tcp = 4, max_half_open = 1, on_log = function(m) logs[#logs + 1] = m end }
    assert.equal(1, #peer(h, { sport = 41000 }):send("S", ""))      -- half-open now
    assert.same({}, peer(h, { sport = 41001 }):send("S", ""))       -- dropped: table full
    assert.same({ "tcp_half_open" }, limits(logs))
    logs = {}
    h = harness { max_tcp = 1, max_half_open = 1, on_log = function(m) logs[#logs + 1] = m end }
    connect(h, { sport = 41002 })
    local r = peer(h, { sport = 41003 }):send("S", "")
    assert.is_true(r[1].rst)
    assert.same({ "tcp_flows" }, limits(logs))
  end)

  it("resets a flow whose receive buffer would exceed the VM's max_buffered, and no other", function()
    local logs = {}
    local h = harness { tcp_buf = 4096, max_buffered = 3 * 4096,
                        on_log = function(m) logs[#logs + 1] = m end }
    local a = connect(h, { sport = 42000 })
    a:send("PA", "one")                          -- a's receive ring: 4 KiB
    assert.equal(1, a.conn:write("x"))           -- a's send ring: 8 KiB so far
    h:take()
    local b = connect(h, { sport = 42001 })
    b:send("PA", "two")                          -- b's receive ring: 12 KiB
    local c = connect(h, { sport = 42002 })
    local r = c:send("PA", "three")              -- would be 16 KiB
    assert.is_true(r[#r].rst)
    assert.same({ "tcp_buffered" }, limits(logs))
    assert.equal("one", a.conn:read())
    assert.equal("two", b.conn:read())
    assert.equal(10, a.conn:write("still fine"))
  end)

  it("resets, from the timer, a flow whose send buffer cannot be had", function()
    local logs = {}
    local h = harness { tcp_buf = 4096, max_buffered = 4096, on_log = function(m) logs[#logs + 1] = m end }
    local a = connect(h, { sport = 43000 })
    a:send("PA", "in")                           -- the receive ring takes the whole bound
    assert.equal(0, a.conn:write("out"))         -- no send ring: nothing taken
    assert.same({ "tcp_buffered" }, limits(logs))
    local r = at(h, h.now + 1)
    assert.is_true(#r >= 1 and r[#r].rst, "expected a RST")
  end)
end)

-- HTTP mediation without a VM: a scripted guest speaks Ethernet frames to
-- core.netif over a socketpair (as QEMU would), through our TCP engine and
-- the proxy, to the loopback server in spec/helpers/http_server.lua. Every
-- wait is bounded; the guest side is lossless, so nothing depends on timing.
local uv = require "luv"
local core = require "gondolin.core"
local gondolin = require "gondolin"
local F = require "helpers.frames"
local http_server = require "helpers.http_server"
local util = require "helpers.util"

local WAIT = 10   -- seconds, a bound on every wait (never reached when things work)

------------------------------------------------------------------ a scripted guest

local Guest = {}
Guest.__index = Guest

local function new_guest(pol, tls_ca, chacha_first)
  local host_fd, guest_fd = core.socketpair()
  local g = setmetatable({ conns = {}, events = {}, dns = {}, next_port = 40000 }, Guest)
  g.netif = core.netif(host_fd, {
    policy = pol and pol._c,
    tls_ca = tls_ca,
    tls_chacha_first = chacha_first,
    on_event = function(ev) g.events[#g.events + 1] = ev end,
  })
  g.pipe = uv.new_pipe(false)
  g.pipe:open(guest_fd)
  local buf = ""
  g.pipe:read_start(function(_, data)
    if not data then return end
    buf = buf .. data
    while #buf >= 4 do
      local len = string.unpack(">I4", buf)
      if #buf < 4 + len then break end
      g:_frame(buf:sub(5, 4 + len))
      buf = buf:sub(5 + len)
    end
  end)
  return g
end

function Guest:send(frame)
  self.pipe:write(string.pack(">I4", #frame) .. frame)
end

-- Drive the loop until pred() holds (or WAIT seconds pass).
function Guest:until_(pred)
  return util.until_(pred, WAIT)
end

function Guest:close()
  self.netif:close()
  if not self.pipe:is_closing() then self.pipe:close() end
  uv.run("nowait")
end

local Conn = {}
Conn.__index = Conn

function Guest:_frame(frame)
  local p = F.parse(frame)
  if p.dns then self.dns[p.dns.id] = p.dns return end
  local t = p.tcp
  if not t then return end
  local c = self.conns[t.dport]
  if not c then return end
  if t.rst then c.was_reset = true return end
  if t.syn and t.ack_flag then
    c.ack = (t.seq + 1) & 0xffffffff
    c.seq = (c.seq + 1) & 0xffffffff
    c.established = true
    c:_ack()
    return
  end
  if #t.payload > 0 or t.fin then
    if t.seq == c.ack then
      c.rx = c.rx .. t.payload
      c.ack = (c.ack + #t.payload) & 0xffffffff
      if t.fin then c.ack = (c.ack + 1) & 0xffffffff c.fin = true end
    end
    c:_ack()   -- cumulative: a duplicate re-acks what we have
  end
end

--- Resolve a name through the stack's DNS.
function Guest:resolve(name)
  local id = math.random(1, 0xffff)
  self:send(F.guest_udp(F.GW_IP, 33333, 53, F.dns_query(id, name)))
  assert(self:until_(function() return self.dns[id] end), "no DNS answer")
  return self.dns[id].answers[1].ip
end

--- Open a TCP connection to ip:port; waits for the handshake.
function Guest:connect(ip, port)
  self.next_port = self.next_port + 1
  local c = setmetatable({ g = self, ip = ip, port = port, sport = self.next_port,
                           seq = 1000, ack = 0, rx = "" }, Conn)
  self.conns[c.sport] = c
  self:send(F.guest_tcp(ip, c.sport, port, c.seq, 0, "S", 65535, F.tcp_opts { mss = 1460 }))
  assert(self:until_(function() return c.established or c.was_reset end), "no SYN-ACK")
  return c
end

function Conn:_ack()
  self.g:send(F.guest_tcp(self.ip, self.sport, self.port, self.seq, self.ack, "A", 65535))
end

--- Send bytes, in segments of at most `seg` bytes (default 1400).
function Conn:write(data, seg)
  seg = seg or 1400
  for i = 1, #data, seg do
    local piece = data:sub(i, i + seg - 1)
    self.g:send(F.guest_tcp(self.ip, self.sport, self.port, self.seq, self.ack, "PA", 65535, "", piece))
    self.seq = (self.seq + #piece) & 0xffffffff
  end
end

function Conn:shutdown()
  self.g:send(F.guest_tcp(self.ip, self.sport, self.port, self.seq, self.ack, "FA", 65535))
  self.seq = (self.seq + 1) & 0xffffffff
end

function Conn:abort()
  self.g:send(F.guest_tcp(self.ip, self.sport, self.port, self.seq, self.ack, "RA", 65535))
end

--- Wait until the peer closed (FIN or RST); returns what was received.
function Conn:read_all()
  assert(self.g:until_(function() return self.fin or self.was_reset end), "connection did not end")
  return self.rx
end

--- Wait until `n` complete responses (by counting status lines) arrived.
function Conn:read_responses(pattern, n)
  self.g:until_(function()
    local _, k = self.rx:gsub(pattern, "")
    return k >= n or self.fin or self.was_reset
  end)
  return self.rx
end

------------------------------------------------------------------ specs

local function req(host, path, extra)
  return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"):format(path, host, extra or "")
end

describe("HTTP mediation (no VM)", function()
  local srv, g, events, ip, host

  local function policy(o)
    o = o or {}
    local p = {
      allow = o.allow or { "example.test" },
      allow_internal = { "127.0.0.1:" .. srv.port },
      resolve = { ["example.test"] = "127.0.0.1", ["other.test"] = "127.0.0.1",
                  ["blocked.test"] = "127.0.0.1" },
      on_event = function(ev) events[#events + 1] = ev end,
    }
    for k, v in pairs(o) do if k ~= "allow" then p[k] = v end end
    return gondolin.policy(p)
  end

  local function start(o)
    if o == false then g = new_guest(nil) else g = new_guest(policy(o)) end
    ip = g:resolve("example.test")
    host = "example.test:" .. srv.port
  end

  setup(function() srv = http_server.start() end)
  teardown(function() srv:close() end)
  before_each(function() events = {} end)
  after_each(function()
    if g then g:close() g = nil end
    collectgarbage("collect")
  end)

  it("forwards a GET and streams the response back", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/hello", "Connection: close\r\n"))
    local rx = c:read_all()
    assert.matches("^HTTP/1.1 200 OK\r\n", rx)
    assert.matches("\r\n\r\nhello, world\n$", rx)
    assert.equal("allow", g.events[1].decision)
    assert.equal("example.test", g.events[1].rule)
  end)

  it("parses a head that arrives one byte per segment", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/hello", "Connection: close\r\n"), 1)
    assert.matches("hello, world\n$", c:read_all())
  end)

  it("answers pipelined requests in order on one connection", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/bytes/3000") .. req(host, "/hello") .. req(host, "/echo", "Connection: close\r\n"), 7)
    local rx = c:read_all()
    local _, n = rx:gsub("HTTP/1.1 200 OK\r\n", "")
    assert.equal(3, n)
    assert.is_true(rx:find("hello, world", 1, true) < rx:find("GET /echo", 1, true))
    assert.equal(g.events[1].flow, g.events[3].flow)
  end)

  it("forwards Content-Length and chunked request bodies with our framing", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write("POST /echo HTTP/1.1\r\nHost: " .. host .. "\r\nContent-Length: 11\r\n\r\nhello world" ..
      "POST /echo HTTP/1.1\r\nHost: " .. host .. "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    local rx = c:read_all()
    assert.matches("Content%-Length: 11\n\nhello world", rx)
    assert.matches("Transfer%-Encoding: chunked\n\nhello world", rx)
    assert.is_nil(rx:find("ext=1", 1, true))
    assert.is_nil(rx:find("Trailer: x", 1, true))
  end)

  it("keeps the length of a HEAD response and sends no body", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write("HEAD /bytes/1234 HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n" .. req(host, "/hello", "Connection: close\r\n"))
    local rx = c:read_all()
    assert.matches("^HTTP/1.1 200 OK\r\n.-Content%-Length: 1234\r\n\r\nHTTP/1.1 200 OK\r\n", rx)
    assert.matches("\r\n\r\nhello, world\n$", rx)
  end)

  it("re-frames a chunked upstream response", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/chunked/2500", "Connection: close\r\n"))
    local rx = c:read_all()
    local body = rx:match("\r\n\r\n(.*)$")
    local plain, rest = {}, body
    while true do
      local size, after = rest:match("^(%x+)\r\n()")
      size = tonumber(size, 16)
      if size == 0 then break end
      plain[#plain + 1] = rest:sub(after, after + size - 1)
      rest = rest:sub(after + size + 2)
    end
    assert.equal(2500, #table.concat(plain))
  end)

  for _, case in ipairs {
    { "CL and TE", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400 },
    { "two Content-Length", "Content-Length: 3\r\nContent-Length: 3\r\n", 400 },
    { "obs-fold", "X-A: 1\r\n  folded\r\n", 400 },
    { "a coding before chunked", "Transfer-Encoding: gzip, chunked\r\n", 501 },
    { "Expect other than 100-continue", "Expect: bananas\r\n", 417 },
  } do
    it("refuses a smuggling shape (" .. case[1] .. ") with " .. case[3] .. " and closes", function()
      start()
      local c = g:connect(ip, srv.port)
      local n = #srv.requests
      c:write(req(host, "/hello", case[2]))
      local rx = c:read_all()
      assert.matches("^HTTP/1.1 " .. case[3] .. " ", rx)
      assert.matches("Connection: close", rx)
      assert.equal(n, #srv.requests)
    end)
  end

  it("refuses a bare LF and a huge chunk size", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write("GET /hello HTTP/1.1\nHost: " .. host .. "\n\n")
    assert.matches("^HTTP/1.1 400 ", c:read_all())
    c = g:connect(ip, srv.port)
    c:write("POST /echo HTTP/1.1\r\nHost: " .. host .. "\r\nTransfer-Encoding: chunked\r\n\r\n" ..
      "fffffffffffffffff\r\n")
    assert.matches("^HTTP/1.1 400 ", c:read_all())
  end)

  it("answers a head over 64 KiB with 431", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write("GET /hello HTTP/1.1\r\nHost: " .. host .. "\r\nX-Big: " .. string.rep("a", 70000))
    assert.matches("^HTTP/1.1 431 ", c:read_all())
  end)

  it("denies everything without a policy", function()
    start(false)
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/hello"))
    assert.matches("^HTTP/1.1 403 Forbidden\r\n", c:read_all())
  end)

  it("refuses a Host that differs from the name dialled (421)", function()
    start({ allow = { "example.test", "other.test" } })
    local c = g:connect(ip, srv.port)
    c:write(req("other.test:" .. srv.port, "/hello"))
    assert.matches("^HTTP/1.1 421 ", c:read_all())
  end)

  it("refuses a blocked address unless an exception names it", function()
    start({ allow = { "blocked.test" }, allow_internal = { "127.0.0.1:1" } })
    local bip = g:resolve("blocked.test")
    local c = g:connect(bip, srv.port)
    c:write(req("blocked.test:" .. srv.port, "/hello"))
    local rx = c:read_all()
    assert.matches("^HTTP/1.1 403 ", rx)
    assert.matches("127.0.0.0/8 loopback", rx, 1, true)
  end)

  -- The host's resolver path (no resolve entry) needs a name the system
  -- resolves to loopback without a network: this machine's own hostname
  -- (Debian's /etc/hosts maps it to 127.0.0.1 or 127.0.1.1). "localhost"
  -- cannot serve: the guest's DNS answers it with the guest's own loopback.
  local function loopback_hostname()
    local name = uv.os_gethostname()
    local res = name and uv.getaddrinfo(name, nil, { socktype = "stream", family = "inet" })
    assert(name and name:match("^[%w-]+$") and res and res[1] and res[1].addr:match("^127%."),
      "this spec needs the machine's hostname to resolve to a 127.x address (/etc/hosts)")
    return name:lower()
  end

  it("resolves on the host and connects only to a checked address", function()
    local name = loopback_hostname()
    g = new_guest(gondolin.policy { allow = { name },
      allow_internal = { "127.0.0.1:" .. srv.port },
      on_event = function(ev) events[#events + 1] = ev end })
    local c = g:connect(g:resolve(name), srv.port)
    c:write(req(name .. ":" .. srv.port, "/hello", "Connection: close\r\n"))
    assert.matches("hello, world", c:read_all())
    assert.equal("127.0.0.1", g.events[1].upstream)
  end)

  it("answers 403 when every address a name resolves to is blocked", function()
    local name = loopback_hostname()
    g = new_guest(gondolin.policy { allow = { name } })
    local c = g:connect(g:resolve(name), srv.port)
    c:write(req(name .. ":" .. srv.port, "/hello"))
    local rx = c:read_all()
    assert.matches("^HTTP/1.1 403 ", rx)
    assert.matches("127.0.0.0/8 loopback", rx, 1, true)
  end)

  it("answers 502 when the server refuses the connection", function()
    local closed = uv.new_tcp()
    closed:bind("127.0.0.1", 0)
    local dead_port = closed:getsockname().port
    closed:close()
    g = new_guest(gondolin.policy { allow = { "example.test" },
      allow_internal = { "127.0.0.1:" .. dead_port }, resolve = { ["example.test"] = "127.0.0.1" } })
    ip = g:resolve("example.test")
    local c = g:connect(ip, dead_port)
    c:write(req("example.test:" .. dead_port, "/hello"))
    assert.matches("^HTTP/1.1 502 ", c:read_all())
  end)

  it("reuses the upstream connection across guest connections", function()
    start()
    local before = srv.connections
    for _ = 1, 3 do
      local c = g:connect(ip, srv.port)
      c:write(req(host, "/hello", "Connection: close\r\n"))
      assert.matches("hello, world", c:read_all())
    end
    assert.equal(before + 1, srv.connections)
    assert.is_true(g.events[3].reused)
  end)

  it("does not pool an upstream connection that still owes request body bytes", function()
    -- a raw server that answers each request head at once, keep-alive,
    -- without reading the body: the rest of the body would be next on the wire
    local raw = uv.new_tcp()
    raw:bind("127.0.0.1", 0)
    local port, accepted, heads = raw:getsockname().port, 0, {}
    raw:listen(16, function()
      local cl = uv.new_tcp()
      raw:accept(cl)
      accepted = accepted + 1
      local id = accepted
      cl:read_start(function(_, data)
        if not data then cl:close() return end
        for line in data:gmatch("(%u+ %S+) HTTP/1.1\r\n") do
          heads[#heads + 1] = { id, line }
          cl:write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        end
      end)
    end)
    g = new_guest(policy { allow_internal = { "127.0.0.1:" .. port } })
    ip = g:resolve("example.test")
    local h = "example.test:" .. port
    local c = g:connect(ip, port)
    c:write("POST /up HTTP/1.1\r\nHost: " .. h .. "\r\nContent-Length: 100000\r\n\r\n0123456789")
    assert.matches("^HTTP/1.1 200 ", c:read_all())
    c = g:connect(ip, port)
    c:write(req(h, "/next", "Connection: close\r\n"))
    assert.matches("^HTTP/1.1 200 ", c:read_all())
    assert.same({ { 1, "POST /up" }, { 2, "GET /next" } }, heads)
    assert.is_false(g.events[2].reused)
    raw:close()
  end)

  it("survives the guest resetting in the middle of a response", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/bytes/2000000"))
    g:until_(function() return #c.rx > 10000 end)
    c:abort()
    g:until_(function() return #g.events > 0 end)
    assert.equal("error", g.events[1].decision)
    local c2 = g:connect(ip, srv.port)
    c2:write(req(host, "/hello", "Connection: close\r\n"))
    assert.matches("hello, world", c2:read_all())
  end)

  it("closes after the responses when the guest half-closes", function()
    start()
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/hello") .. req(host, "/hello"))
    c:shutdown()
    local rx = c:read_all()
    local _, n = rx:gsub("hello, world", "")
    assert.equal(2, n)
    assert.is_true(c.fin)
  end)

  it("evicts the flow that waited longest for its head when at the flow bound (slowloris)", function()
    start()
    local slow = {}
    for i = 1, 256 do
      local c = g:connect(ip, srv.port)
      c:write(("GET /hello HTTP/1.1\r\nHost: %s\r\nX-Slow: %d\r\n"):format(host, i))   -- never finished
      slow[i] = c
    end
    local c = g:connect(ip, srv.port)
    c:write(req(host, "/hello", "Connection: close\r\n"))
    assert.matches("^HTTP/1.1 200 OK\r\n", c:read_all())
    slow[1]:read_all()
    assert.is_true(slow[1].was_reset, "the oldest slow flow was reset")
    assert.is_nil(slow[256].was_reset)
    local limit = false
    for _, ev in ipairs(g.events) do if ev.kind == "limit" and ev.limit == "http_flows" then limit = true end end
    assert.is_true(limit)
  end)

  it("serves more closed connections in a row than it mediates at once", function()
    start()
    for i = 1, 300 do      -- PROXY_MAX_FLOWS is 256; closed flows must not count
      local c = g:connect(ip, srv.port)
      c:write(req(host, "/hello", "Connection: close\r\n"))
      local rx = c:read_all()
      assert.matches("^HTTP/1.1 200 OK\r\n", rx, 1, false, "connection " .. i)
      c:shutdown()
    end
    assert.equal(300, #g.events)
  end)

  describe("secrets", function()
    local p

    before_each(function()
      p = policy { allow = { "example.test", "other.test" },
                   secrets = { KEY = { hosts = { "example.test" }, value = "real-secret-42" } } }
      g = new_guest(p)
      ip = g:resolve("example.test")
      host = "example.test:" .. srv.port
    end)

    it("substitutes toward the secret's host and masks the echo", function()
      local c = g:connect(ip, srv.port)
      c:write(req(host, "/echo", "X-Key: k=" .. p.placeholders.KEY .. "\r\nConnection: close\r\n"))
      local rx = c:read_all()
      assert.equal("k=real-secret-42", srv:last("^/echo$").headers["x-key"])
      assert.matches("X-Key: k=" .. p.placeholders.KEY, rx, 1, true)
      assert.is_nil(rx:find("real-secret-42", 1, true))
    end)

    it("refuses the placeholder toward another host", function()
      local oip = g:resolve("other.test")
      local c = g:connect(oip, srv.port)
      c:write(req("other.test:" .. srv.port, "/echo", "X-Key: " .. p.placeholders.KEY .. "\r\n"))
      local rx = c:read_all()
      assert.matches("^HTTP/1.1 403 ", rx)
      assert.matches("secret KEY", rx, 1, true)
    end)

    it("masks a value split across many small upstream chunks", function()
      local c = g:connect(ip, srv.port)
      c:write(req(host, "/header/X-A/real-secret-42", "Connection: close\r\n"))
      local rx = c:read_all()
      assert.is_nil(rx:find("real-secret-42", 1, true))
      assert.matches("value=" .. p.placeholders.KEY, rx, 1, true)
    end)
  end)

  describe("secrets in the query and the body (opt-in)", function()
    local p

    before_each(function()
      p = policy { allow = { "example.test", "other.test" },
                   secrets = {
                     Q = { hosts = { "example.test" }, value = "q&v=1 +", query = true },
                     B = { hosts = { "example.test" }, value = "the-real-body-value", body = true },
                     H = { hosts = { "example.test" }, value = "header-only" },
                   },
                   on_request = function(r)
                     if r.path == "/hooked" then r:set_body(r:body() .. "!") r.path = "/echo" end
                   end }
      g = new_guest(p)
      ip = g:resolve("example.test")
      host = "example.test:" .. srv.port
    end)

    local function post(to_ip, to_host, path, body, extra)
      local c = g:connect(to_ip, srv.port)
      c:write(("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n%s")
        :format(path, to_host, extra or ("Content-Length: " .. #body .. "\r\n"), body), 300)
      return c:read_all()
    end

    it("fills an opted-in placeholder in the query, percent-encoded", function()
      local rx = post(ip, host, "/echo?k=" .. p.placeholders.Q .. "&h=" .. p.placeholders.H, "")
      assert.matches("^HTTP/1.1 200 ", rx)
      local seen = srv:last("^/echo").path
      assert.equal("/echo?k=q%26v%3D1%20%2B&h=" .. p.placeholders.H, seen)
      assert.is_nil(rx:find("q&v=1 +", 1, true))
    end)

    it("fills a length-framed body, keeping an exact Content-Length", function()
      local body = '{"a":"' .. p.placeholders.B .. '","b":"' .. p.placeholders.H .. '"}'
      local rx = post(ip, host, "/echo", body)
      assert.matches("^HTTP/1.1 200 ", rx)
      local r = srv:last("^/echo$")
      local want = '{"a":"the-real-body-value","b":"' .. p.placeholders.H .. '"}'
      assert.equal(want, r.body)
      assert.equal(tostring(#want), r.headers["content-length"])
      assert.is_nil(r.headers["transfer-encoding"])
      assert.is_nil(rx:find("the-real-body-value", 1, true))   -- the echo is masked
    end)

    it("fills a chunked body with a placeholder split across chunks", function()
      local ph = p.placeholders.B
      local body = ("%x\r\nx=%s\r\n%x\r\n%s;\r\n0\r\n\r\n"):format(
        2 + 20, ph:sub(1, 20), #ph - 20 + 1, ph:sub(21))
      post(ip, host, "/echo", body, "Transfer-Encoding: chunked\r\n")
      assert.equal("x=the-real-body-value;", srv:last("^/echo$").body)
    end)

    it("fills a body a hook buffered, keeping an exact Content-Length", function()
      post(ip, host, "/hooked", "k=" .. p.placeholders.B)
      local r = srv:last("^/echo$")
      assert.equal("k=the-real-body-value!", r.body)
      assert.equal(tostring(#"k=the-real-body-value!"), r.headers["content-length"])
    end)

    it("keeps Content-Length toward a host no body secret may reach", function()
      local oip = g:resolve("other.test")
      local rx = post(oip, "other.test:" .. srv.port, "/echo", "plain body")
      assert.matches("^HTTP/1.1 200 ", rx)
      local r = srv:last("^/echo$")
      assert.equal("plain body", r.body)
      assert.equal("10", r.headers["content-length"])
    end)

    it("refuses an opted-in placeholder in a body toward another host", function()
      local oip = g:resolve("other.test")
      local n = #srv.requests
      local rx = post(oip, "other.test:" .. srv.port, "/echo", string.rep("x", 5000) .. p.placeholders.B)
      assert.matches("^HTTP/1.1 403 ", rx)
      assert.equal(n, #srv.requests)    -- buffered first: nothing went upstream
      assert.matches("secret B may not be sent to other.test", rx, 1, true)
      assert.equal("deny", g.events[#g.events].decision)
    end)

    it("refuses an opted-in placeholder in the query toward another host", function()
      local oip = g:resolve("other.test")
      local rx = post(oip, "other.test:" .. srv.port, "/echo?k=" .. p.placeholders.Q, "")
      assert.matches("^HTTP/1.1 403 ", rx)
    end)
  end)

  describe("hooks", function()
    local seen

    before_each(function()
      seen = {}
      g = new_guest(policy {
        on_request = function(r)
          seen[#seen + 1] = r.path
          if r.path == "/deny" then return r:deny() end
          if r.path == "/answer" then return r:respond(200, { ["X-Hook"] = "yes" }, "from hook") end
          if r.path == "/wait" then gondolin.sleep(0.01) r.path = "/hello" end
          if r.path == "/raise" then error("broken hook") end
          if r.path == "/spin" then while true do pcall(function() while true do end end) end end
          if r.path == "/body" then r:set_body("[" .. r:body() .. "]") r.path = "/echo" end
          if r.path == "/elsewhere" then r.host = "other.test" end
        end,
        on_response = function(res, r)
          if r.path == "/hello" then res.headers["X-Seen"] = "1" end
          if r.path == "/bytes/10" then res:set_body("<" .. #res:body() .. ">") end
        end,
      })
      ip = g:resolve("example.test")
      host = "example.test:" .. srv.port
    end)

    local function exchange(path, extra, body)
      local c = g:connect(ip, srv.port)
      c:write(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n%s"):format(
        body and "POST" or "GET", path, host, extra or "", body or ""))
      return c:read_all()
    end

    it("denies and answers from the hook", function()
      assert.matches("^HTTP/1.1 403 ", exchange "/deny")
      local rx = exchange "/answer"
      assert.matches("^HTTP/1.1 200 OK\r\n", rx)
      assert.matches("X%-Hook: yes", rx)
      assert.matches("from hook$", rx)
    end)

    it("resumes the flow after the hook waited", function()
      local rx = exchange "/wait"
      assert.matches("X%-Seen: 1", rx)
      assert.matches("hello, world\n$", rx)
    end)

    it("buffers the body for the hook and sends its replacement", function()
      local rx = exchange("/body", "Content-Length: 5\r\n", "abcde")
      assert.equal("[abcde]", srv:last("^/echo$").body)
      assert.matches("\n%[abcde%]$", rx)
    end)

    it("buffers the response body for on_response and sends its replacement", function()
      assert.matches("\r\n\r\n<10>$", exchange "/bytes/10")
    end)

    it("fails closed with 502 when the hook raises", function()
      local real = io.stderr
      io.stderr = { write = function() end }
      local ok, rx = pcall(exchange, "/raise")
      io.stderr = real
      assert.is_true(ok, rx)
      assert.matches("^HTTP/1.1 502 ", rx)
      assert.matches("broken hook", rx, 1, true)
    end)

    it("fails a hook that never ends closed with 502, naming the hook, and serves the next", function()
      local lines = {}
      local real = io.stderr
      io.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat { ... } end }
      local ok, rx = pcall(exchange, "/spin")
      io.stderr = real
      assert.is_true(ok, rx)
      assert.matches("^HTTP/1.1 502 ", rx)
      assert.matches("on_request ran out of its instruction budget", rx, 1, true)
      assert.matches("on_request failed: on_request ran out of its instruction budget", table.concat(lines), 1, true)
      assert.matches("hello, world\n$", exchange "/wait")
    end)

    it("checks a host the hook changed against the allowlist", function()
      assert.matches("^HTTP/1.1 403 ", exchange "/elsewhere")
    end)
  end)

  describe("over TLS", function()
    local dir, ca

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      ca = assert(core.tls_ca(dir))
    end)
    teardown(function()
      ca:close()
      os.execute("rm -rf " .. dir)
    end)

    -- A TLS client (mbedTLS over memory) on a scripted guest connection,
    -- policy options o; how.again: on the guest of the last call,
    -- how.session: resume that, how.chacha_first: the netif option.
    local function tls_connect(sni, o, how)
      how = how or {}
      if not how.again then
        if g then g:close() end
        g = new_guest(policy(o), ca, how.chacha_first)
        ip = g:resolve(sni or "example.test")
      end
      local c = g:connect(ip, srv.port)
      local cli = assert(core.tls_endpoint { role = "client", ca = ca:pem(), sni = sni,
                                             alpn = { "h2", "http/1.1" }, session = how.session })
      local ok, err
      g:until_(function()
        ok, err = cli:handshake()
        local out = cli:output()
        if #out > 0 then c:write(out) end
        if #c.rx > 0 then cli:feed(c.rx) c.rx = "" end
        return ok ~= false or c.was_reset
      end)
      return c, cli, ok, err
    end

    local function tls_exchange(c, cli, data)
      assert(cli:write(data) == #data)
      c:write(cli:output())
      local got = ""
      g:until_(function()
        if #c.rx > 0 then cli:feed(c.rx) c.rx = "" end
        local pt = cli:read()
        if pt then got = got .. pt end
        return got:find("\r\n\r\n", 1, true) ~= nil or pt == nil or c.was_reset
      end)
      return got
    end

    -- A guest connection that has sent only its ClientHello (for example.test).
    local function hello_only(tls_ca)
      g = new_guest(policy(), tls_ca)
      ip = g:resolve("example.test")
      local c = g:connect(ip, srv.port)
      local cli = assert(core.tls_endpoint { role = "client", ca = ca:pem(), sni = "example.test" })
      cli:handshake()
      return c, cli:output()
    end

    it("presents a leaf for the SNI that verifies against the CA, TLS 1.2 with ALPN http/1.1", function()
      local _, cli, ok, err = tls_connect("example.test")
      assert.is_true(ok, err)
      local info = cli:info()
      assert.equal("TLSv1.2", info.version)
      assert.equal("http/1.1", info.alpn)
      assert.matches("CN=example.test", info.peer_subject, 1, true)
      assert.equal(1, g.netif:stats().tls_handshakes)
    end)

    it("prefers AES-128-GCM, or ChaCha20-Poly1305 with tls_chacha_first", function()
      local _, cli = tls_connect("example.test")
      assert.equal("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", cli:info().cipher)
      _, cli = tls_connect("example.test", nil, { chacha_first = true })
      assert.equal("TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256", cli:info().cipher)
    end)

    it("lets a client resume its session from a ticket, under the same policy", function()
      local _, cli, ok, err = tls_connect("example.test", { allow = { "other.test" } })
      assert.is_true(ok, err)
      local session = assert(cli:session())
      local c2, cli2, ok2, err2 = tls_connect("example.test", nil, { again = true, session = session })
      assert.is_true(ok2, err2)
      assert.matches("^HTTP/1.1 403 ", tls_exchange(c2, cli2, req("example.test:" .. srv.port, "/hello")))
      local st = g.netif:stats()
      assert.equal(2, st.tls_handshakes)
      assert.equal(1, st.tls_resumed)
      -- another interface's ticket key cannot open it: a full handshake
      local _, _, ok3, err3 = tls_connect("example.test", nil, { session = session })
      assert.is_true(ok3, err3)
      assert.equal(0, g.netif:stats().tls_resumed)
    end)

    it("mints once per name and serves the next handshake from the cache", function()
      local before = ca:stats()
      tls_connect("cached.test")
      g:close() g = nil
      tls_connect("cached.test")
      local after = ca:stats()
      assert.equal(before.misses + 1, after.misses)
      assert.equal(before.hits + 1, after.hits)
    end)

    it("uses the synthetic DNS name when the ClientHello has no SNI", function()
      local _, cli, ok, err = tls_connect(nil)
      assert.is_true(ok, err)
      assert.matches("CN=example.test", cli:info().peer_subject, 1, true)
    end)

    it("answers a host outside the allowlist with 403, encrypted", function()
      local c, cli, ok = tls_connect("blocked.test", { allow = { "example.test" } })
      assert.is_true(ok)
      local rx = tls_exchange(c, cli, req("blocked.test:" .. srv.port, "/hello"))
      assert.matches("^HTTP/1.1 403 ", rx)
      local ev = g.events[#g.events]
      assert.equal("deny", ev.decision)
      assert.is_true(ev.tls)
    end)

    it("refuses a Host that differs from the SNI with 421 (domain fronting)", function()
      local c, cli, ok = tls_connect("example.test", { allow = { "example.test", "other.test" } })
      assert.is_true(ok)
      local rx = tls_exchange(c, cli, req("other.test:" .. srv.port, "/hello"))
      assert.matches("^HTTP/1.1 421 ", rx)
      assert.matches("TLS server name", g.events[#g.events].reason, 1, true)
    end)

    it("resets the flow with an event on garbage after the ClientHello", function()
      local c, hello = hello_only(ca)
      c:write(hello .. string.rep("\x16\x03\x03\xff\xff garbage ", 200))
      assert.is_true(g:until_(function() return c.was_reset or c.fin end))
      assert.equal(1, g.netif:stats().tls_failures)
      local ev = g.events[#g.events]
      assert.equal("tls", ev.kind)
      assert.equal("error", ev.decision)
      assert.matches("TLS", ev.reason)
    end)

    it("ends a truncated handshake with an event when the guest gives up", function()
      local c, hello = hello_only(ca)
      c:write(hello)
      assert(g:until_(function() return #c.rx > 0 end))
      c:shutdown()    -- never sends its key exchange
      assert.is_true(g:until_(function() return c.was_reset or c.fin end))
      local ev = g.events[#g.events]
      assert.equal("tls", ev.kind)
      assert.matches("closed during the handshake", ev.reason)
    end)

    for _, case in ipairs {
      { "an oversized record (a 16 KiB+ flood)", "\23\3\3\255\255", "oversized record" },
      { "a renegotiation attempt", "\22\3\3\0\64", "renegotiation refused" },
    } do
      it("closes the flow with an event on " .. case[1] .. " after the handshake", function()
        local c, _, ok = tls_connect("example.test")
        assert.is_true(ok)
        c:write(case[2] .. string.rep("A", 2000))
        assert.is_true(g:until_(function() return c.was_reset end))
        local ev = g.events[#g.events]
        assert.equal("tls", ev.kind)
        assert.equal("error", ev.decision)
        assert.matches(case[3], ev.reason, 1, true)
      end)
    end

    it("refuses TLS flows when no CA was given", function()
      local c, hello = hello_only(nil)
      c:write(hello)
      assert.is_true(g:until_(function() return c.was_reset end))
      assert.matches("no CA", g.events[#g.events].reason)
    end)
  end)
end)

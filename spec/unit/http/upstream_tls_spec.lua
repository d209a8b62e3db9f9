-- The upstream client (csrc/http/upstream.c) and its TLS layer
-- (csrc/tls/client.c) for real, without a VM: core.upstream_client opens
-- connections through a pool, against `openssl s_server` (another TLS
-- implementation: verification, resumption, a large file) and the
-- in-process server of spec/helpers/http_server.lua (keep-alive over TLS,
-- uploads). Every wait is bounded by WAIT; nothing depends on timing.
local uv = require "luv"
local core = require "gondolin.core"
local util = require "helpers.util"
local http_server = require "helpers.http_server"

local WAIT = 20   -- seconds, a bound on every wait (never reached when things work)

-- Drive the loop until pred() holds or WAIT seconds pass.
local function until_(pred) return util.until_(pred, WAIT) end
local read_file = util.read_file

local function sh(cmd)
  local rc, out = util.sh(cmd .. " 2>&1")
  assert(rc == 0, cmd .. ": " .. out)
end

-- One fetch; returns data, err, info once on_done ran.
local function fetch(client, t)
  local done
  t.on_done = function(d, e, info) done = { d, e, info } end
  local ok, err = client:fetch(t)
  if not ok then return nil, err, { code = -1 } end
  assert(until_(function() return done end), "fetch did not finish")
  return done[1], done[2], done[3]
end

local function body_of(response)
  return response and response:match("\r\n\r\n(.*)$")
end

local function free_port()
  local t = uv.new_tcp()
  assert(t:bind("127.0.0.1", 0))
  local port = t:getsockname().port
  t:close()
  uv.run("nowait")
  return port
end

-- openssl s_server -WWW in dir (serving its files); waits until it listens.
local function s_server(dir, cert, key)
  local port = free_port()
  local h = assert(uv.spawn("openssl", {
    args = { "s_server", "-accept", "127.0.0.1:" .. port, "-cert", cert, "-key", key,
             "-WWW", "-quiet" },
    cwd = dir,
  }, function() end))
  local up = false
  local deadline = uv.now() + WAIT * 1000
  while not up and uv.now() < deadline do
    local t, answered = uv.new_tcp(), false
    t:connect("127.0.0.1", port, function(err)
      up = not err
      answered = true
    end)
    until_(function() return answered end)
    t:close()
    if not up then
      local timer, fired = uv.new_timer(), false
      timer:start(50, 0, function() fired = true end)
      until_(function() return fired end)
      timer:close()
    end
  end
  assert(up, "openssl s_server did not start listening")
  return { port = port, stop = function()
    if not h:is_closing() then
      h:kill("sigterm")
      h:close()
    end
    uv.run("nowait")
  end }
end

describe("upstream TLS client", function()
  local dir, ca_pem, other_ca_pem, big_sum
  local BIG = 8 * 1024 * 1024

  setup(function()
    dir = util.tmpdir()
    local req = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
    sh(("cd %s && %s -subj /CN=test-ca -keyout ca.key -out ca.pem"):format(dir, req))
    sh(("cd %s && %s -subj /CN=other-ca -keyout other.key -out other.pem"):format(dir, req))
    -- leaf: upstream.test and 127.0.0.1; leaf2: upstream.test only
    for name, san in pairs { leaf = "DNS:upstream.test,IP:127.0.0.1", leaf2 = "DNS:upstream.test" } do
      sh(("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
        "-subj /CN=upstream.test -keyout %s.key -out %s.csr"):format(dir, name, name))
      local ext = io.open(dir .. "/" .. name .. ".ext", "w")
      ext:write("subjectAltName=" .. san .. "\n")
      ext:close()
      sh(("cd %s && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
        "-days 2 -extfile %s.ext -out %s.pem"):format(dir, name, name, name))
    end
    ca_pem, other_ca_pem = read_file(dir .. "/ca.pem"), read_file(dir .. "/other.pem")
    local f = assert(io.open(dir .. "/index.html", "w"))
    f:write("hello over tls\n")
    f:close()
    sh(("head -c %d /dev/urandom > %s/big.bin"):format(BIG, dir))
    big_sum = util.sha256(read_file(dir .. "/big.bin"))
  end)

  teardown(function()
    if dir then util.sh("rm -rf " .. dir) end
  end)

  local function client_for(port, ca)
    return core.upstream_client {
      allow_internal = { "upstream.test:" .. port, "other.test:" .. port, "127.0.0.1:" .. port },
      resolve = { ["upstream.test"] = "127.0.0.1", ["other.test"] = "127.0.0.1" },
      upstream_ca = ca,
    }
  end

  local function get(path)
    return "GET " .. path .. " HTTP/1.0\r\nHost: upstream.test\r\n\r\n"
  end

  describe("against openssl s_server", function()
    local srv

    setup(function() srv = s_server(dir, dir .. "/leaf.pem", dir .. "/leaf.key") end)
    teardown(function() if srv then srv.stop() end end)

    it("fetches over a verified connection with the right CA", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local data, err, info = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                         request = get("/index.html") })
      assert.is_nil(err)
      assert.equal("hello over tls\n", body_of(data))
      assert.is_true(info.tls)
      assert.equal("127.0.0.1", info.address)
      assert.equal(1, c:stats().handshakes)
    end)

    it("verifies an IP literal against the certificate's iPAddress name", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local data, err = fetch(c, { host = "127.0.0.1", port = srv.port, tls = true,
                                   request = get("/index.html") })
      assert.is_nil(err)
      assert.equal("hello over tls\n", body_of(data))
    end)

    it("refuses a certificate from a CA it does not trust", function()
      for _, ca in ipairs { { other_ca_pem }, {} } do   -- another CA; the system bundle only
        local c <close> = client_for(srv.port, ca)
        local data, err, info = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                           request = get("/index.html") })
        assert.is_nil(data)
        assert.matches("^upstream certificate not trusted: ", err)
        assert.equal(-71, info.code)     -- -EPROTO
        assert.equal(1, c:stats().failures)
      end
    end)

    it("refuses a certificate for another name", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local data, err = fetch(c, { host = "other.test", port = srv.port, tls = true,
                                   request = get("/index.html") })
      assert.is_nil(data)
      assert.equal("upstream certificate name mismatch: not valid for other.test", err)
    end)

    it("brings an 8 MiB file intact", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local data, err = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                   request = get("/big.bin") })
      assert.is_nil(err)
      local body = body_of(data)
      assert.equal(BIG, #body)
      assert.equal(big_sum, util.sha256(body))
    end)

    it("resumes the session on the next connection to the same origin", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local _, err1, info1 = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                        request = get("/index.html") })
      local data, err2, info2 = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                           request = get("/index.html") })
      assert.is_nil(err1)
      assert.is_nil(err2)
      assert.is_false(info1.resumed)
      assert.is_true(info2.resumed)
      assert.is_false(info2.reused)    -- a new connection (s_server -WWW closes each)
      assert.equal("hello over tls\n", body_of(data))
      local st = c:stats()
      assert.equal(2, st.handshakes)
      assert.equal(1, st.offered)
      assert.equal(1, st.resumed)
    end)

    it("fails cleanly when the extra CA is not a certificate", function()
      local c <close> = client_for(srv.port, { "garbage" })
      local ok, err = c:fetch { host = "upstream.test", port = srv.port, tls = true,
                                request = get("/"), on_done = function() end }
      assert.is_nil(ok)
      assert.matches("upstream_ca 1: no certificate found", err, 1, true)
    end)
  end)

  describe("against a keep-alive HTTPS server", function()
    local srv, srv2

    setup(function()
      srv = http_server.start { tls = { cert = read_file(dir .. "/leaf.pem"), key = read_file(dir .. "/leaf.key") } }
      srv2 = http_server.start { tls = { cert = read_file(dir .. "/leaf2.pem"), key = read_file(dir .. "/leaf2.key") } }
    end)
    teardown(function()
      if srv then srv:close() end
      if srv2 then srv2:close() end
    end)

    local HELLO = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n"
    local function get11(path)
      return "GET " .. path .. " HTTP/1.1\r\nHost: upstream.test\r\n\r\n"
    end

    it("reuses a pooled TLS connection for the next request", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local before = srv.connections
      local t = { host = "upstream.test", port = srv.port, tls = true, request = get11("/hello"),
                  expect = #HELLO }
      local d1, e1, i1 = fetch(c, t)
      assert.is_nil(e1)
      assert.equal(HELLO, d1)
      assert.is_false(i1.reused)
      assert.equal(1, c:stats().idle)
      local d2, e2, i2 = fetch(c, t)
      assert.is_nil(e2)
      assert.equal(HELLO, d2)
      assert.is_true(i2.reused)
      assert.equal(1, srv.connections - before)
      assert.equal(1, c:stats().handshakes)
    end)

    it("never gives a TLS connection for plain TCP or the other way round", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local before = srv.connections
      local t = { host = "upstream.test", port = srv.port, tls = true, request = get11("/hello"),
                  expect = #HELLO }
      local d1, e1 = fetch(c, t)
      assert.is_nil(e1)
      assert.equal(HELLO, d1)
      assert.equal(1, c:stats().idle)
      t.tls = nil                      -- same host:port in plain: a new connection
      local d2, _, i2 = fetch(c, t)
      assert.is_false(i2.reused)
      assert.is_false(i2.tls)
      assert.not_equal(HELLO, d2)      -- the TLS server refuses it
      assert.equal(2, srv.connections - before)
      t.tls = true                     -- the pooled TLS one is still there
      local d3, _, i3 = fetch(c, t)
      assert.equal(HELLO, d3)
      assert.is_true(i3.reused)
      assert.equal(1, c:stats().handshakes)
    end)

    it("streams a large response through the pool's flow control", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local n = 4 * 1024 * 1024
      local head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " ..
        n .. "\r\n\r\n"
      local data, err = fetch(c, { host = "upstream.test", port = srv.port, tls = true,
                                   request = get11("/bytes/" .. n), expect = #head + n })
      assert.is_nil(err)
      assert.equal(head, data:sub(1, #head))
      assert.equal(srv:sha256(n), util.sha256(data:sub(#head + 1)))
    end)

    it("uploads a body larger than the write queue", function()
      local c <close> = client_for(srv.port, { ca_pem })
      local body = ("0123456789abcdef"):rep(64 * 1024)   -- 1 MiB
      local req = "POST /upload HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n" ..
        "Content-Length: " .. #body .. "\r\n\r\n" .. body
      local data, err = fetch(c, { host = "upstream.test", port = srv.port, tls = true, request = req })
      assert.is_nil(err)
      assert.equal(("%d %s\n"):format(#body, util.sha256(body)), body_of(data))
    end)

    it("refuses an IP literal the certificate does not name", function()
      local c <close> = client_for(srv2.port, { ca_pem })
      local data, err = fetch(c, { host = "127.0.0.1", port = srv2.port, tls = true,
                                   request = get11("/hello"), expect = #HELLO })
      assert.is_nil(data)
      assert.equal("upstream certificate name mismatch: not valid for 127.0.0.1", err)
      local d2, e2 = fetch(c, { host = "upstream.test", port = srv2.port, tls = true,
                                request = get11("/hello"), expect = #HELLO })
      assert.is_nil(e2)
      assert.equal(HELLO, d2)
    end)
  end)
end)

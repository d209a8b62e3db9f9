-- HTTP mediation end to end: a guest's busybox wget/nc, our stack and policy,
-- and a loopback HTTP server started by the spec (nothing leaves 127.0.0.1).
-- Every wait is bounded by the exec timeout; nothing depends on timing.
local gondolin = require "gondolin"
local http_server = require "helpers.http_server"

local TIMEOUT = 240   -- seconds, per guest command (TCG is slow)

-- The first event matching every field of want (nil when none).
local find_event = require("helpers.util").find_event

describe("HTTP mediation #vm", function()
  local srv, vm, pol, events, audit_file
  local function sh(cmd)
    local r = vm:exec((cmd:gsub("PORT", tostring(srv.port))), { timeout = TIMEOUT })
    assert.is_false(r.timed_out, "guest command timed out: " .. cmd)
    return r
  end

  setup(function()
    srv = http_server.start()
    events = {}
    audit_file = os.tmpname()
    pol = gondolin.policy {
      allow = { "example.test", "other.test" },
      allow_internal = { "127.0.0.1:" .. srv.port },
      resolve = { ["example.test"] = "127.0.0.1", ["other.test"] = "127.0.0.1",
                  ["denied.test"] = "127.0.0.1" },
      secrets = { TOKEN = { hosts = { "example.test" }, value = "s3cr3t-value" },
                  -- bodies toward example.test (the uploads) are only scanned for it
                  BODYKEY = { hosts = { "other.test" }, value = "body-value-7", body = true } },
      on_event = function(ev) events[#events + 1] = ev end,
      audit = audit_file,
    }
    vm = gondolin.vm { image = "minimal", policy = pol }
  end)

  teardown(function()
    if vm then vm:close() end
    if srv then srv:close() end
    os.remove(audit_file)
  end)

  before_each(function() events = {} end)

  it("forwards a small GET to an allowed host and records it", function()
    local r = sh "wget -qO- http://example.test:PORT/hello"
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello, world\n", r.stdout)
    local ev = find_event(events, { path = "/hello" })
    assert.is_table(ev)
    assert.equal("allow", ev.decision)
    assert.equal("example.test", ev.rule)
    assert.equal("example.test", ev.host)
    assert.equal("GET", ev.method)
    assert.equal(200, ev.status)
    assert.equal(vm.id, ev.vm)
    assert.equal("127.0.0.1", ev.upstream)
    assert.is_number(ev.time)
    assert.is_number(ev.duration)
    assert.is_true(ev.bytes_in > 0 and ev.bytes_out > #"hello, world\n")
    assert.equal("Wget", srv:last("^/hello$").headers["user-agent"])
  end)

  it("streams a 100 MiB download intact", function()
    local n = 100 * 1024 * 1024
    local r = sh(("wget -qO- http://example.test:PORT/bytes/%d | sha256sum"):format(n))
    assert.equal(0, r.code, r.stderr)
    assert.equal(srv:sha256(n), r.stdout:match("^(%x+)"))
    assert.is_true(find_event(events, { status = 200 }).bytes_out > n)
  end)

  it("streams a 50 MiB upload intact", function()
    -- busybox wget sends --post-file with printf("%s"): the data must hold no NUL
    local r = sh [[dd if=/dev/urandom bs=1M count=38 2>/dev/null | base64 | head -c 52428800 > /tmp/up &&
      sha256sum /tmp/up && wget -qO- --post-file=/tmp/up http://example.test:PORT/upload; rm -f /tmp/up]]
    assert.equal(0, r.code, r.stderr)
    local mine, len, theirs = r.stdout:match("^(%x+)%s+/tmp/up\n(%d+) (%x+)\n$")
    assert.equal("52428800", len)
    assert.equal(mine, theirs)
  end)

  it("decodes and re-frames a chunked response", function()
    local r = sh "wget -qO- http://example.test:PORT/chunked/300000 | sha256sum"
    assert.equal(0, r.code, r.stderr)
    assert.equal(srv:sha256(300000), r.stdout:match("^(%x+)"))
  end)

  it("serves pipelined requests on one keep-alive connection, in order", function()
    local r = sh [[printf 'GET /hello HTTP/1.1\r\nHost: example.test:PORT\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: example.test:PORT\r\n\r\nGET /echo HTTP/1.1\r\nHost: example.test:PORT\r\nConnection: close\r\n\r\n' | nc example.test PORT]]
    assert.equal(0, r.code, r.stderr)
    -- with secrets in the policy bodies are masked, so framing is chunked
    local a = r.stdout:find("hello, world", 1, true)
    local b = r.stdout:find("Content-Type: application/octet-stream", 1, true)
    local c = r.stdout:find("GET /echo HTTP/1.1", 1, true)
    assert.is_truthy(a and b and c, r.stdout)
    assert.is_true(a < b and b < c)
    local _, statuses = r.stdout:gsub("HTTP/1.1 200 OK\r\n", "")
    assert.equal(3, statuses)
    local e1, e3 = find_event(events, { path = "/hello" }), find_event(events, { path = "/echo" })
    assert.equal(e1.flow, e3.flow)
  end)

  it("answers Expect: 100-continue itself and forwards the body", function()
    local r = sh [[printf 'POST /echo HTTP/1.1\r\nHost: example.test:PORT\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde' | nc example.test PORT]]
    assert.equal(0, r.code, r.stderr)
    assert.matches("^HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", r.stdout)
    assert.matches("Content-Length: 5\n\nabcde", r.stdout, 1, true)
    assert.is_nil(srv:last("^/echo$").headers.expect)
  end)

  it("denies a host that is not in the allowlist with 403 and an event", function()
    local r = sh "wget -qO- http://denied.test:PORT/hello; echo rc=$?"
    assert.matches("rc=1", r.stdout)
    assert.matches("403 Forbidden", r.stderr)
    local ev = find_event(events, { host = "denied.test" })
    assert.equal("deny", ev.decision)
    assert.equal(403, ev.status)
    assert.matches("not in the allowlist", ev.reason)
    assert.is_nil(srv:last("^/hello$") and srv:last("^/hello$").headers.host:match("denied"))
  end)

  it("refuses a Host that is not the name the guest dialled", function()
    local r = sh [[printf 'GET /hello HTTP/1.1\r\nHost: other.test:PORT\r\n\r\n' | nc example.test PORT]]
    assert.matches("^HTTP/1.1 421 Misdirected Request\r\n", r.stdout)
    local ev = find_event(events, { status = 421 })
    assert.equal("deny", ev.decision)
    assert.matches("other.test", ev.reason)
  end)

  it("answers a malformed request with 400 and closes", function()
    local r = sh [[printf 'GET /hello HTTP/1.1\r\nHost: example.test:PORT\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n' | nc example.test PORT]]
    assert.matches("^HTTP/1.1 400 Bad Request\r\n", r.stdout)
    assert.matches("Connection: close", r.stdout)
  end)

  it("resets a TCP flow that is not HTTP and records why", function()
    local before = vm.netif:stats().tcp_resets_sent
    sh "echo SSH-2.0-OpenSSH_9.0 | nc example.test 22"
    local ev = find_event(events, { kind = "unknown", dst_port = 22 })
    assert.is_table(ev)
    assert.equal("deny", ev.decision)
    assert.is_string(ev.reason)
    assert.is_true(vm.netif:stats().tcp_resets_sent > before)
  end)

  it("tunnels a websocket upgrade after the handshake", function()
    local r = sh [[printf 'GET /ws HTTP/1.1\r\nHost: example.test:PORT\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nhello-tunnel' | nc example.test PORT]]
    assert.matches("^HTTP/1.1 101 Switching Protocols\r\n", r.stdout)
    assert.matches("\r\n\r\nws:hello%-tunnel$", r.stdout)
    assert.is_true(find_event(events, { path = "/ws" }).websocket)
  end)

  describe("secrets", function()
    it("gives the guest only a placeholder", function()
      local r = sh "echo $TOKEN"
      assert.equal(pol.placeholders.TOKEN .. "\n", r.stdout)
    end)

    it("substitutes the real value toward the secret's host and masks its echo", function()
      local r = sh [[wget -qO- --header "Authorization: Bearer $TOKEN" http://example.test:PORT/echo]]
      assert.equal(0, r.code, r.stderr)
      assert.equal("Bearer s3cr3t-value", srv:last("^/echo$").headers.authorization)
      assert.matches("Authorization: Bearer " .. pol.placeholders.TOKEN, r.stdout, 1, true)
      assert.is_nil(r.stdout:find("s3cr3t", 1, true))
      assert.equal(1, find_event(events, { path = "/echo" }).secrets)
    end)

    it("substitutes inside Basic credentials and masks the encoded echo", function()
      local r = sh [[wget -qO- http://user:$TOKEN@example.test:PORT/echo]]
      assert.equal(0, r.code, r.stderr)
      local sent = srv:last("^/echo$").headers.authorization
      assert.equal("Basic dXNlcjpzM2NyM3QtdmFsdWU=", sent)   -- user:s3cr3t-value
      assert.is_nil(r.stdout:find("dXNlcjpzM2NyM3QtdmFsdWU=", 1, true))
    end)

    it("masks a real value in response headers and bodies", function()
      local r = sh "wget -S -qO- http://example.test:PORT/header/X-Leak/s3cr3t-value 2>&1"
      assert.equal(0, r.code)
      assert.is_nil(r.stdout:find("s3cr3t", 1, true))
      assert.matches("X-Leak: " .. pol.placeholders.TOKEN, r.stdout, 1, true)
      assert.matches("value=" .. pol.placeholders.TOKEN, r.stdout, 1, true)
    end)

    it("fills an opted-in secret in a request body, toward its host only", function()
      local r = sh [[wget -qO- --post-data "k=$BODYKEY" http://other.test:PORT/echo]]
      assert.equal(0, r.code, r.stderr)
      assert.equal("k=body-value-7", srv:last("^/echo$").body)
      assert.is_nil(r.stdout:find("body-value-7", 1, true))
      local n = #srv.requests
      r = sh [[wget -qO- --post-data "k=$BODYKEY" http://example.test:PORT/echo; echo rc=$?]]
      assert.matches("rc=1", r.stdout)
      assert.matches("403", r.stderr)
      -- the body streams: the head may have gone, but the body stopped short
      for i = n + 1, #srv.requests do
        local body = srv.requests[i].body or ""
        assert.is_nil(body:find("body-value-7", 1, true))
        assert.is_nil(body:find(pol.placeholders.BODYKEY, 1, true))
      end
      assert.matches("secret BODYKEY", find_event(events, { host = "example.test", status = 403 }).reason, 1, true)
    end)

    it("streams a body over the buffering limit through the filler, chunked", function()
      local r = sh [[yes abcdefgh | head -c 2000000 > /tmp/big && echo "k=$BODYKEY" >> /tmp/big &&
        wget -qO- --post-file /tmp/big http://other.test:PORT/upload]]
      assert.equal(0, r.code, r.stderr)
      local want = string.rep("abcdefgh\n", 2000000 // 9 + 1):sub(1, 2000000) .. "k=body-value-7\n"
      local tmp = os.tmpname()
      local f = assert(io.open(tmp, "wb"))
      f:write(want)
      f:close()
      local p = assert(io.popen("sha256sum " .. tmp))
      local sum = p:read("a"):match("^(%x+)")
      p:close()
      os.remove(tmp)
      assert.equal(("%d %s\n"):format(#want, sum), r.stdout)
      assert.equal("chunked", srv:last("^/upload$").headers["transfer-encoding"])
    end)

    it("blocks a placeholder headed to another host (403 and an event)", function()
      local n = #srv.requests
      local r = sh [[wget -qO- --header "X-Key: $TOKEN" http://other.test:PORT/echo; echo rc=$?]]
      assert.matches("rc=1", r.stdout)
      assert.matches("403", r.stderr)
      assert.equal(n, #srv.requests)
      local ev = find_event(events, { host = "other.test", status = 403 })
      assert.matches("secret TOKEN", ev.reason, 1, true)
    end)
  end)

  it("writes the audit trail as JSON lines", function()
    sh "wget -qO- http://example.test:PORT/hello"
    local f = assert(io.open(audit_file))
    local text = f:read("a")
    f:close()
    assert.matches('"path":"/hello"', text, 1, true)
    assert.matches('"decision":"deny"', text, 1, true)
    for line in text:gmatch("[^\n]+") do assert.matches("^{.*}$", line) end
  end)

  describe("the guest network", function()
    it("answers DNS with a synthetic address", function()
      local r = sh "nslookup example.test"
      assert.matches("Address:%s+198%.1[89]%.%d+%.%d+", r.stdout)
    end)

    it("answers ping to the gateway", function()
      local before = vm.netif:stats().icmp_echo
      local r = sh "ping -c 2 -W 5 192.168.127.1"
      assert.equal(0, r.code, r.stdout)
      assert.equal(before + 2, vm.netif:stats().icmp_echo)
    end)

    it("drops UDP that is not DNS, and counts it", function()
      -- this busybox's nc has no -u; traceroute's probes are UDP to port 33434+
      local before = vm.netif:stats().udp_dropped
      sh "traceroute -n -m 1 -q 1 -w 1 192.168.127.1"
      assert.is_true(vm.netif:stats().udp_dropped >= before + 1)
    end)
  end)
end)

describe("HTTP mediation hooks #vm", function()
  local srv, vm, hooked

  setup(function()
    srv = http_server.start()
    hooked = {}
    local pol = gondolin.policy {
      allow = { "example.test" },
      allow_internal = { "127.0.0.1:" .. srv.port },
      resolve = { ["example.test"] = "127.0.0.1" },
      on_request = function(req)
        hooked[#hooked + 1] = { method = req.method, path = req.path, query = req.query,
                                host = req.host, url = req.url, ua = req.headers["USER-AGENT"] }
        if req.path == "/deny" then return req:deny(403, "no entry\n") end
        if req.path == "/synthetic" then
          return req:respond(201, { ["X-Source"] = "hook" }, "made by the hook\n")
        end
        if req.path == "/slow" then gondolin.sleep(0.05) req.path = "/hello" end
        if req.path == "/boom" then error("hook bug") end
        if req.method == "POST" then req:set_body((req:body()):upper()) end
        req.headers["X-Hooked"] = "1"
      end,
      on_response = function(res, req)
        res.headers["X-Seen"] = req.path
        if req.path == "/hello" then res:set_body(res:body() .. "and more\n") end
        if req.path == "/status/404" then res.status = 410 end
      end,
    }
    vm = gondolin.vm { image = "minimal", policy = pol }
  end)

  teardown(function()
    if vm then vm:close() end
    if srv then srv:close() end
  end)

  local function sh(cmd)
    local r = vm:exec((cmd:gsub("PORT", tostring(srv.port))), { timeout = TIMEOUT })
    assert.is_false(r.timed_out)
    return r
  end

  it("shows the request to on_request and forwards its edits", function()
    local r = sh "wget -qO- 'http://example.test:PORT/echo?a=1'"
    assert.equal(0, r.code, r.stderr)
    local h = hooked[#hooked]
    assert.same({ method = "GET", path = "/echo", query = "a=1", host = "example.test",
                  url = ("http://example.test:%d/echo?a=1"):format(srv.port), ua = "Wget" }, h)
    assert.equal("1", srv:last("^/echo").headers["x-hooked"])
  end)

  it("lets on_request deny or answer, without contacting upstream", function()
    local n = #srv.requests
    local r = sh "wget -qO- http://example.test:PORT/deny; echo rc=$?"
    assert.matches("403", r.stderr)
    r = sh "wget -S -qO- http://example.test:PORT/synthetic 2>&1"
    assert.matches("HTTP/1.1 201", r.stdout)
    assert.matches("X%-Source: hook", r.stdout)
    assert.matches("made by the hook", r.stdout)
    assert.equal(n, #srv.requests)
  end)

  it("keeps the flow paused while a hook waits, then resumes it", function()
    local r = sh "wget -qO- http://example.test:PORT/slow"
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello, world\nand more\n", r.stdout)
  end)

  it("gives the hook the body when it asks, and sends what it sets", function()
    local r = sh "wget -qO- --post-data 'small body' http://example.test:PORT/echo"
    assert.equal(0, r.code, r.stderr)
    assert.equal("SMALL BODY", srv:last("^/echo").body)
    assert.equal("10", srv:last("^/echo").headers["content-length"])
  end)

  it("lets on_response change status, headers and body", function()
    local r = sh "wget -S -qO- http://example.test:PORT/hello 2>&1"
    assert.matches("X%-Seen: /hello", r.stdout)
    assert.matches("hello, world\nand more\n", r.stdout, 1, true)
    r = sh "wget -qO- http://example.test:PORT/status/404; echo rc=$?"
    assert.matches("410", r.stderr)
  end)

  it("fails closed with 502 when a hook raises", function()
    local real, said = io.stderr, {}
    io.stderr = { write = function(_, ...) for _, x in ipairs { ... } do said[#said + 1] = x end end }
    local ok, r = pcall(sh, "wget -qO- http://example.test:PORT/boom; echo rc=$?")
    io.stderr = real
    assert.is_true(ok, r)
    assert.matches("502", r.stderr)
    assert.matches("hook bug", table.concat(said), 1, true)   -- reported
  end)
end)

-- HTTPS end to end with the base image: curl, python3, git and openssl in
-- the guest verify our interception CA; the host decrypts, mediates with the
-- same policy, hooks and secrets as plain HTTP, and speaks TLS upstream to a
-- loopback server whose certificate comes from a test CA (upstream_ca).
local gondolin = require "gondolin"
local core = require "gondolin.core"
local http_server = require "helpers.http_server"
local util = require "helpers.util"

local TIMEOUT = 120

local find_event = util.find_event
local write_file = util.write_file

describe("HTTPS through the interception #base", function()
  local vm, pol, srv, bad_srv, wrong_srv, events, dir
  local test_ca, other_ca

  local function sh(cmd)
    cmd = cmd:gsub("BADPORT", tostring(bad_srv.port)):gsub("WRONGPORT", tostring(wrong_srv.port))
             :gsub("PORT", tostring(srv.port))
    local r = vm:exec(cmd, { timeout = TIMEOUT })
    assert.is_false(r.timed_out, "guest command timed out: " .. cmd)
    return r
  end

  setup(function()
    dir = util.tmpdir()
    -- the upstream servers' CAs: one trusted through upstream_ca, one not
    test_ca = assert(core.tls_ca(dir .. "/test-ca"))
    other_ca = assert(core.tls_ca(dir .. "/other-ca"))
    write_file(dir .. "/upstream-ca.pem", test_ca:pem())
    local cert, key = test_ca:issue("example.test")
    srv = http_server.start { tls = { cert = cert, key = key } }
    cert, key = other_ca:issue("untrusted.test")
    bad_srv = http_server.start { tls = { cert = cert, key = key } }
    cert, key = test_ca:issue("somewhere-else.test")
    wrong_srv = http_server.start { tls = { cert = cert, key = key } }
    -- a bare repository for git's dumb HTTP protocol
    os.execute(("cd %s && git init -q work && cd work && echo hi > README && git add README && " ..
      "git -c user.name=t -c user.email=t@t commit -qm first && git clone -q --bare . ../repo.git && " ..
      "cd ../repo.git && git update-server-info"):format(dir))
    srv.files = dir
    events = {}
    pol = gondolin.policy {
      allow = { "example.test", "other.test", "untrusted.test", "wrongname.test" },
      allow_internal = { "127.0.0.1:" .. srv.port, "127.0.0.1:" .. bad_srv.port,
                         "127.0.0.1:" .. wrong_srv.port },
      resolve = { ["example.test"] = "127.0.0.1", ["other.test"] = "127.0.0.1",
                  ["denied.test"] = "127.0.0.1", ["untrusted.test"] = "127.0.0.1",
                  ["wrongname.test"] = "127.0.0.1" },
      secrets = { TOKEN = { hosts = { "example.test" }, value = "s3cr3t-tls-value" } },
      upstream_ca = dir .. "/upstream-ca.pem",
      on_event = function(ev) events[#events + 1] = ev end,
    }
    vm = gondolin.vm { image = "base", policy = pol }
  end)

  teardown(function()
    if vm then vm:close() end
    for _, s in ipairs { srv, bad_srv, wrong_srv } do s:close() end
    if test_ca then test_ca:close() end
    if other_ca then other_ca:close() end
    if dir then os.execute("rm -rf " .. dir) end
  end)

  before_each(function() events = {} end)

  it("serves curl over HTTPS with the same policy and an audit event", function()
    local r = sh "curl -sS https://example.test:PORT/hello"
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello, world\n", r.stdout)
    local ev = find_event(events, { path = "/hello" })
    assert.is_table(ev)
    assert.equal("allow", ev.decision)
    assert.equal("example.test", ev.host)
    assert.equal(200, ev.status)
    assert.is_true(ev.tls)
  end)

  it("serves python3's urllib with its default verification", function()
    local r = sh [[python3 -c 'import urllib.request as u; print(u.urlopen("https://example.test:PORT/hello").read().decode(), end="")']]
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello, world\n", r.stdout)
  end)

  it("lets git clone over HTTPS", function()
    local r = sh "cd /tmp && git clone -q https://example.test:PORT/files/repo.git && cat repo/README"
    assert.equal(0, r.code, r.stderr)
    assert.equal("hi\n", r.stdout)
  end)

  it("downloads 32 MiB intact", function()
    local n = 32 * 1024 * 1024
    local r = sh("curl -sS https://example.test:PORT/bytes/" .. n .. " | sha256sum")
    assert.equal(0, r.code, r.stderr)
    assert.equal(srv:sha256(n), r.stdout:match("^(%x+)"))
  end)

  it("uploads a body intact", function()
    local r = sh [[head -c 3000000 /dev/urandom > /tmp/up && sha256sum /tmp/up | cut -d' ' -f1 &&
                   curl -sS --data-binary @/tmp/up https://example.test:PORT/upload]]
    assert.equal(0, r.code, r.stderr)
    local sum, len, got = r.stdout:match("^(%x+)\n(%d+) (%x+)\n$")
    assert.equal("3000000", len)
    assert.equal(sum, got)
  end)

  it("keeps the guest's TLS connection alive across requests", function()
    local r = sh "curl -sS https://example.test:PORT/hello https://example.test:PORT/hello"
    assert.equal(0, r.code, r.stderr)
    assert.equal("hello, world\nhello, world\n", r.stdout)
    local flows = {}
    for _, ev in ipairs(events) do
      if ev.path == "/hello" then flows[#flows + 1] = ev.flow end
    end
    assert.equal(2, #flows)
    assert.equal(flows[1], flows[2])
  end)

  it("lets a guest client resume its session from the host's ticket", function()
    local before = vm.netif:stats()
    local get = [[printf 'GET /hello HTTP/1.1\r\nHost: example.test:PORT\r\nConnection: close\r\n\r\n' |
                  openssl s_client -ign_eof -connect example.test:PORT -servername example.test]]
    local r = sh(get .. " -sess_out /tmp/sess >/dev/null 2>&1 && " .. get .. " -sess_in /tmp/sess 2>&1")
    assert.equal(0, r.code, r.stdout)
    assert.matches("Reused, TLSv1.2", r.stdout, 1, true)
    assert.matches("hello, world", r.stdout, 1, true)
    local after = vm.netif:stats()
    assert.equal(before.tls_resumed + 1, after.tls_resumed)
    assert.equal(before.tls_handshakes + 2, after.tls_handshakes)
  end)

  it("points sessions at the CA alone; the system bundle holds it too", function()
    local r = sh [[echo "$SSL_CERT_FILE $CURL_CA_BUNDLE $REQUESTS_CA_BUNDLE"; grep -c BEGIN "$SSL_CERT_FILE";
                   env -u CURL_CA_BUNDLE -u SSL_CERT_FILE curl -sS --cacert /etc/ssl/certs/ca-certificates.crt \
                     https://example.test:PORT/hello]]
    assert.equal(0, r.code, r.stderr)
    assert.equal("/run/gondolin/ca.crt /run/gondolin/ca.crt /run/gondolin/ca.crt\n1\nhello, world\n", r.stdout)
  end)

  it("under TCG (only), keeps OpenSSL off emulated vector code unless the session says otherwise", function()
    assert.equal(vm.accel == "tcg" and "~0x1000020000000000:~0x20\n" or "\n",
                 vm:exec("echo $OPENSSL_ia32cap").stdout)
    assert.equal("0\n", vm:exec("echo $OPENSSL_ia32cap", { env = { "OPENSSL_ia32cap=0" } }).stdout)
    local r = sh "curl -sS -w ' %{ssl_verify_result}' https://example.test:PORT/hello"
    assert.equal("hello, world\n 0", r.stdout)
  end)

  it("denies a host outside the allowlist with 403 over TLS", function()
    local r = sh "curl -s -o /dev/null -w '%{http_code}' https://denied.test:PORT/hello"
    assert.equal("403", r.stdout)
    assert.equal("deny", find_event(events, { host = "denied.test" }).decision)
  end)

  it("refuses domain fronting (SNI and Host disagree) with 421", function()
    local r = sh "curl -s -o /dev/null -w '%{http_code}' -H 'Host: other.test:PORT' https://example.test:PORT/hello"
    assert.equal("421", r.stdout)
  end)

  it("answers 502 with a reason when the upstream certificate is not trusted", function()
    local r = sh "curl -s -o /dev/null -w '%{http_code}' https://untrusted.test:BADPORT/hello"
    assert.equal("502", r.stdout)
    local ev = find_event(events, { host = "untrusted.test" })
    assert.matches("not trusted", ev.reason)
  end)

  it("answers 502 when the upstream certificate names another host", function()
    local r = sh "curl -s -o /dev/null -w '%{http_code}' https://wrongname.test:WRONGPORT/hello"
    assert.equal("502", r.stdout)
    assert.matches("name", find_event(events, { host = "wrongname.test" }).reason)
  end)

  describe("secrets", function()
    it("reach the server in Bearer and Basic credentials; the guest sees placeholders", function()
      local r = sh "echo $TOKEN"
      assert.equal(pol.placeholders.TOKEN .. "\n", r.stdout)
      r = sh [[curl -sS -H "Authorization: Bearer $TOKEN" https://example.test:PORT/echo]]
      assert.equal(0, r.code, r.stderr)
      assert.equal("Bearer s3cr3t-tls-value", srv:last("^/echo$").headers.authorization)
      -- echoed back, the value is masked
      assert.matches("Authorization: Bearer " .. pol.placeholders.TOKEN, r.stdout, 1, true)
      assert.is_nil(r.stdout:find("s3cr3t-tls-value", 1, true))
      r = sh [[curl -sS -u "user:$TOKEN" https://example.test:PORT/echo]]
      assert.equal(0, r.code, r.stderr)
      local basic = srv:last("^/echo$").headers.authorization
      assert.equal("Basic " .. util.base64("user:s3cr3t-tls-value"), basic)
    end)

    it("never leave toward another host", function()
      local r = sh [[curl -s -o /dev/null -w '%{http_code}' -H "X-Key: $TOKEN" https://other.test:PORT/echo]]
      assert.equal("403", r.stdout)
    end)
  end)

  it("tunnels a websocket over TLS after the handshake", function()
    local r = sh [[(printf 'GET /ws HTTP/1.1\r\nHost: example.test:PORT\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nhello-wss'; sleep 2) |
      openssl s_client -quiet -no_ign_eof -verify_return_error -servername example.test -connect example.test:PORT 2>/dev/null]]
    assert.matches("\r\n\r\nws:hello%-wss", r.stdout)
    assert.is_true(find_event(events, { path = "/ws" }).websocket)
  end)
end)

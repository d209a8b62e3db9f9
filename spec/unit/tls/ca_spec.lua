-- The interception CA and its leaves, without a VM: files and permissions,
-- corrupt CAs, leaf verification and the leaf cache; TLS endpoints over
-- memory; gondolin.ca and `gondolin ca`.
local core = require "gondolin.core"
local uv = require "luv"
local util = require "helpers.util"

local function mode(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

local write = util.write_file

local read = util.read_file

-- Pump bytes between two endpoints until both handshakes end (bounded).
local function handshake(cli, srv)
  local a, b, err
  for _ = 1, 20 do
    a, err = cli:handshake()
    if a == nil then return nil, err end
    srv:feed(cli:output())
    b, err = srv:handshake()
    if b == nil then return nil, err end
    cli:feed(srv:output())
    if a and b then return true end
  end
  return nil, "no progress"
end

-- A server endpoint with a fresh leaf for name, and a client trusting trust.
local function pair(ca, name, trust, sni, alpn)
  local cert, key = assert(ca:issue(name))
  local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key, alpn = alpn })
  local cli = assert(core.tls_endpoint { role = "client", ca = trust, sni = sni, alpn = alpn })
  return cli, srv
end

-- What openssl says about a PEM certificate: (command args, with {pem}
-- where its file goes) -> output.
local function openssl(dir, pem, args)
  write(dir .. "/x.pem", pem)
  local file = dir .. "/x.pem"
  local _, out = util.sh(("openssl %s 2>&1"):format((args:gsub("{pem}", function() return file end))))
  return out
end

describe("core.tls_ca", function()
  local dir

  before_each(function() dir = util.tmpdir() .. "/ca" end)
  after_each(function() os.execute("rm -rf " .. dir:match("^(.*)/ca$")) end)

  it("is made on first use: key 0600, directory 0700, reused after, replaced by rotate", function()
    local ca = assert(core.tls_ca(dir))
    assert.equal(tonumber("600", 8), mode(dir .. "/ca.key"))
    assert.equal(tonumber("700", 8), mode(dir))
    assert.equal(dir, ca:dir())
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", ca:pem())
    assert.equal(read(dir .. "/ca.crt"), ca:pem())
    local again = assert(core.tls_ca(dir))
    assert.equal(ca:pem(), again:pem())
    assert.is_true(core.tls_ca_rotate(dir))
    assert.equal(tonumber("600", 8), mode(dir .. "/ca.key"))
    local new = assert(core.tls_ca(dir))
    assert.are_not.equal(ca:pem(), new:pem())
    assert.equal(again:pem(), ca:pem())          -- an open CA keeps the old one
    local _, ls = util.sh("ls -a " .. dir)
    assert.falsy(ls:find("tmp", 1, true))          -- no temporary files left behind
  end)

  it("makes a CA certificate as specified: EC P-256, CA:true pathlen 0, keyCertSign, 10 years", function()
    local ca = assert(core.tls_ca(dir))
    local text = openssl(dir, ca:pem(), "x509 -noout -text -in {pem}")
    assert.matches("Subject: CN = gondolin MITM CA, O = gondolin", text, 1, true)
    assert.matches("Issuer: CN = gondolin MITM CA, O = gondolin", text, 1, true)
    assert.matches("ecdsa-with-SHA256", text, 1, true)
    assert.matches("prime256v1", text, 1, true)
    assert.matches("Basic Constraints: critical%s+CA:TRUE, pathlen:0", text)
    assert.matches("Key Usage: critical%s+Certificate Sign, CRL Sign", text)
    assert.matches("Subject Key Identifier", text, 1, true)
    local serial = text:match("Serial Number:%s*\n%s*([%x:]+)")
    assert.truthy(serial)
    assert.is_true(#serial:gsub(":", "") <= 32 and tonumber(serial:sub(1, 2), 16) < 0x80)
    local to = text:match("Not After : %a+%s+%d+ [%d:]+ (%d+)")
    assert.equal(tonumber(os.date("!%Y")) + 10, tonumber(to))
  end)

  it("reports a corrupt, mismatched or exposed CA with the path and how to rotate", function()
    local first = assert(core.tls_ca(dir))
    local first_key = read(dir .. "/ca.key")
    local leaf_crt, leaf_key = first:issue("example.test")
    local cases = {
      { "garbage ca.crt", function() write(dir .. "/ca.crt", "garbage") end, "/ca.crt" },
      { "garbage ca.key", function() write(dir .. "/ca.key", "garbage") end, "/ca.key" },
      { "another CA's key", function() write(dir .. "/ca.key", first_key) end, "does not match" },
      { "a leaf as the CA", function() write(dir .. "/ca.crt", leaf_crt:match("^.-END CERTIFICATE%-%-%-%-%-\n"))
                                      write(dir .. "/ca.key", leaf_key) end, "not a CA" },
      { "key mode 0644", function() uv.fs_chmod(dir .. "/ca.key", tonumber("644", 8)) end, "readable by others" },
      { "ca.key missing", function() os.remove(dir .. "/ca.key") end, "ca.key is missing" },
      { "ca.crt missing", function() os.remove(dir .. "/ca.crt") end, "ca.crt is missing" },
    }
    for _, case in ipairs(cases) do
      assert(core.tls_ca_rotate(dir))
      case[2]()
      local _, files = util.sh("cat " .. dir .. "/ca.crt " .. dir .. "/ca.key 2>/dev/null")
      local ca, err, code = core.tls_ca(dir)
      assert.is_nil(ca, case[1])
      assert.equal("ca", code)
      assert.matches(case[3], err, 1, true)
      assert.matches(dir, err, 1, true)
      assert.matches("gondolin ca rotate", err, 1, true)
      local _, after = util.sh("cat " .. dir .. "/ca.crt " .. dir .. "/ca.key 2>/dev/null")
      assert.equal(files, after)                  -- never silently replaced
    end
  end)

  it("signs with a CA made elsewhere (RSA, its own subject): leaves chain to it", function()
    assert(uv.fs_mkdir(dir, tonumber("700", 8)))
    local rc = util.sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/ca.key -out %s/ca.crt -days 30 "
      .. "-subj '/C=XX/O=Example Corp/CN=Corp Root' -addext basicConstraints=critical,CA:true "
      .. "-addext keyUsage=critical,keyCertSign 2>/dev/null"):format(dir, dir))
    assert.equal(0, rc)
    uv.fs_chmod(dir .. "/ca.key", tonumber("600", 8))
    local ca = assert(core.tls_ca(dir))
    local cert = assert(ca:issue("example.test"))
    local out = openssl(dir, cert, "verify -CAfile " .. dir .. "/ca.crt -verify_hostname example.test {pem}")
    assert.matches(": OK", out, 1, true)
    local cli, srv = pair(ca, "example.test", ca:pem(), "example.test")
    assert.is_true(handshake(cli, srv))
  end)

  it("closes: methods raise after, a second close does nothing", function()
    local ca = assert(core.tls_ca(dir))
    assert.matches("gondolin.tls_ca", tostring(ca), 1, true)
    assert.is_true(ca:close())
    assert.is_true(ca:close())
    assert.has_error(function() ca:pem() end)
    do local scoped <close> = assert(core.tls_ca(dir)) end
    collectgarbage("collect")
  end)
end)

describe("ca:issue", function()
  local dir, ca

  before_each(function()
    dir = util.tmpdir()
    ca = assert(core.tls_ca(dir .. "/ca"))
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("mints a leaf that verifies for its name, carries data both ways, negotiates ALPN", function()
    local cli, srv = pair(ca, "example.test", ca:pem(), "example.test", { "h2", "http/1.1" })
    local ok, err = handshake(cli, srv)
    assert.is_true(ok, err)
    local ci, si = cli:info(), srv:info()
    assert.equal("TLSv1.2", ci.version)
    assert.equal("TLSv1.2", si.version)
    assert.equal("h2", ci.alpn)
    assert.matches("^TLS%-ECDHE%-ECDSA%-WITH%-", ci.cipher)
    assert.truthy(ci.cipher:find("GCM") or ci.cipher:find("CHACHA20"))
    assert.equal("CN=example.test", ci.peer_subject)
    assert.same({ "DNS:example.test" }, ci.peer_san)
    assert.equal(4, cli:write("ping"))
    srv:feed(cli:output())
    assert.equal("ping", srv:read())
    assert.equal("", srv:read())                  -- nothing more yet
    local big = string.rep("x", 40000)
    local sent = 0
    while sent < #big do sent = sent + srv:write(big:sub(sent + 1)) end
    cli:feed(srv:output())
    local got = {}
    for _ = 1, 10 do got[#got + 1] = cli:read() end
    assert.equal(big, table.concat(got))
    assert.is_true(srv:close_notify())
    cli:feed(srv:output())
    local s, cerr, code = cli:read()
    assert.is_nil(s)
    assert.equal("closed", cerr)
    assert.equal("closed", code)
  end)

  it("offers only http/1.1 when asked, and none when not", function()
    local cli, srv = pair(ca, "example.test", ca:pem(), "example.test", { "http/1.1" })
    assert.is_true(handshake(cli, srv))
    assert.equal("http/1.1", cli:info().alpn)
    cli, srv = pair(ca, "example.test", ca:pem(), "example.test")
    assert.is_true(handshake(cli, srv))
    assert.is_nil(cli:info().alpn)
  end)

  it("fails the client for another name, another CA, or an expired leaf", function()
    local cli, srv = pair(ca, "example.test", ca:pem(), "other.test")
    local ok, err = handshake(cli, srv)
    assert.is_nil(ok)
    assert.matches("certificate verify failed", err, 1, true)
    assert.matches("Common Name (CN) does not match", err, 1, true)
    local other = assert(core.tls_ca(dir .. "/other"))
    cli, srv = pair(ca, "example.test", other:pem(), "example.test")
    ok, err = handshake(cli, srv)
    assert.is_nil(ok)
    assert.matches("not correctly signed by the trusted CA", err, 1, true)
    local cert, key = ca:issue("example.test", 1, os.time() - 3 * 86400)
    srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
    cli = assert(core.tls_endpoint { role = "client", ca = ca:pem(), sni = "example.test" })
    ok, err = handshake(cli, srv)
    assert.is_nil(ok)
    assert.matches("validity has expired", err, 1, true)
  end)

  it("puts an iPAddress SAN in leaves for IP literals", function()
    -- mbedTLS 2.28 checks a hostname against dNSName SANs (or the CN) only:
    -- sni = "10.1.2.3" fails there whatever the certificate says. So the SAN
    -- is checked as the peer sees it (peer_san) and by openssl -verify_ip.
    for name, want in pairs { ["10.1.2.3"] = "IP:10.1.2.3", ["::1"] = "IP:::1",
                              ["2001:db8::7"] = "IP:2001:db8::7" } do
      local cli, srv = pair(ca, name, ca:pem(), nil)
      assert.is_true(handshake(cli, srv))
      assert.same({ want }, cli:info().peer_san)
      local out = openssl(dir, (ca:issue(name)), ("verify -CAfile %s/ca/ca.crt -verify_ip %s {pem}"):format(dir, name))
      assert.matches(": OK", out, 1, true)
      out = openssl(dir, (ca:issue(name)), ("verify -CAfile %s/ca/ca.crt -verify_ip 10.9.9.9 {pem}"):format(dir))
      assert.falsy(out:find(": OK", 1, true))
    end
  end)

  it("sets the leaf extensions: CA:false, digitalSignature, serverAuth, AKI = the CA's SKI", function()
    local text = openssl(dir, (ca:issue("example.test")), "x509 -noout -text -in {pem}")
    assert.matches("Subject: CN = example.test", text, 1, true)
    assert.matches("CA:FALSE", text, 1, true)
    assert.matches("Key Usage: critical%s+Digital Signature", text)
    assert.matches("TLS Web Server Authentication", text, 1, true)
    assert.matches("DNS:example.test", text, 1, true)
    local ski = openssl(dir, ca:pem(), "x509 -noout -text -in {pem}"):match("Subject Key Identifier:%s*\n%s*([%x:]+)")
    assert.matches("Authority Key Identifier:%s*\n%s*[keyid:]*" .. ski, text)
    local days = text:match("Not After : (%a+%s+%d+ [%d:]+ %d+)")
    assert.truthy(days)
  end)

  it("refuses names a certificate cannot carry", function()
    for _, bad in ipairs { "", "a\nb", string.rep("a", 300), "a,CN=b", "a b", "*.x" } do
      local cert, err, code = ca:issue(bad)
      assert.is_nil(cert)
      assert.matches("not a name", err)
      assert.equal("name", code)
    end
    assert.has_error(function() ca:issue("a.test", 0) end)
  end)
end)

describe("ca:leaf and ca:stats", function()
  local dir

  before_each(function() dir = util.tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("caches leaves by name, case-insensitively, with expiry and LRU eviction", function()
    local ca = assert(core.tls_ca(dir .. "/ca", { leaf_max = 2, leaf_ttl_ms = 50 }))
    local a = assert(ca:leaf("A.test"))
    assert.equal(a, ca:leaf("a.test"))
    local st = ca:stats()
    assert.same({ hits = 1, misses = 1, minted = 1, evicted = 0, size = 1 },
                { hits = st.hits, misses = st.misses, minted = st.minted, evicted = st.evicted, size = st.size })
    assert.matches("CN = a.test", openssl(dir, a, "x509 -noout -subject -in {pem}"), 1, true)
    assert(ca:leaf("b.test"))
    assert(ca:leaf("a.test"))                     -- a is now the most recent
    assert(ca:leaf("c.test"))                     -- evicts b
    st = ca:stats()
    assert.equal(1, st.evicted)
    assert.equal(2, st.size)
    assert.equal(a, ca:leaf("a.test"))
    assert.equal(st.misses, ca:stats().misses)
    assert(ca:leaf("b.test"))
    assert.equal(st.misses + 1, ca:stats().misses)
    uv.sleep(80)
    uv.update_time()
    assert.are_not.equal(a, ca:leaf("a.test"))    -- expired: minted again
    st = ca:stats()
    assert.equal(st.misses, st.minted)
    assert.is_true(st.mint_us > 0)
    print(("\n  leaf mint: %.2f ms each (%d minted)"):format(st.mint_us / st.minted / 1000, st.minted))
  end)

  it("refuses invalid names without counting a miss", function()
    local ca = assert(core.tls_ca(dir .. "/ca"))
    for _, bad in ipairs { "", "\n", "a\nb", string.rep("a", 300), "a,CN=b" } do
      local l, err, code = ca:leaf(bad)
      assert.is_nil(l)
      assert.matches("not a name", err)
      assert.equal("name", code)
    end
    assert.equal(0, ca:stats().misses)
    assert.has_error(function() core.tls_ca(dir .. "/ca", { leaf_max = -1 }) end)
    assert.has_error(function() core.tls_ca(dir .. "/ca", { leaf_max = 1e6 }) end)
  end)
end)

describe("core.tls_endpoint", function()
  local dir, ca, cert, key

  before_each(function()
    dir = util.tmpdir()
    ca = assert(core.tls_ca(dir .. "/ca"))
    cert, key = ca:issue("example.test")
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("fails a server handshake on garbage, never crashes", function()
    math.randomseed(7)
    local junk = { string.rep("\0", 100), "\22\3\1\0\5hello", ("\22\3\3\255\255"):rep(10),
                   "GET / HTTP/1.1\r\n\r\n" }
    for _ = 1, 20 do
      local t = {}
      for i = 1, math.random(1, 600) do t[i] = string.char(math.random(0, 255)) end
      junk[#junk + 1] = table.concat(t)
    end
    for _, bytes in ipairs(junk) do
      local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
      srv:feed(bytes)
      local ok, err = srv:handshake()
      if ok == false then                         -- a plausible record header: then EOF
        srv:feed()
        ok, err = srv:handshake()
      end
      assert.is_nil(ok)
      assert.is_string(err)
      srv:close()
    end
  end)

  it("waits on a truncated ClientHello, fails it at EOF", function()
    local cli = assert(core.tls_endpoint { role = "client", sni = "example.test" })
    assert.is_false(cli:handshake())
    local hello = cli:output()
    assert.equal(22, hello:byte(1))
    local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
    srv:feed(hello:sub(1, 20))
    assert.is_false(srv:handshake())
    srv:feed()
    local ok, err = srv:handshake()
    assert.is_nil(ok)
    assert.is_string(err)
    local s, rerr = srv:read()
    assert.is_nil(s)
    assert.is_string(rerr)
  end)

  it("bounds what is fed and not consumed", function()
    local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
    assert.is_true(srv:feed(string.rep("a", 1024 * 1024)))
    local ok, err, code = srv:feed("b")
    assert.is_nil(ok)
    assert.matches("1 MiB", err)
    assert.equal("full", code)
  end)

  it("keeps to TLS 1.2: a client limited to 1.1 is refused", function()
    local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
    local cli = assert(core.tls_endpoint { role = "client", ca = ca:pem(), sni = "example.test",
                                           min_version = "1.1", max_version = "1.1" })
    assert.is_nil(handshake(cli, srv))
    assert.has_error(function() core.tls_endpoint { role = "client", min_version = "1.3" } end,
                     "min_version: TLS 1.3 is not in this mbedTLS (2.28)")
  end)

  it("checks its options: bad PEM is nil, err; misuse raises", function()
    local ep, err, code = core.tls_endpoint { role = "client", ca = "not a pem" }
    assert.is_nil(ep)
    assert.matches("^ca: ", err)
    assert.equal("tls", code)
    ep, err = core.tls_endpoint { role = "client", ca = ca:pem() .. "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }
    assert.is_nil(ep)                             -- half a bundle never means "verify none"
    assert.matches("^ca: ", err)
    ep, err = core.tls_endpoint { role = "server", cert = cert, key = "junk" }
    assert.is_nil(ep)
    assert.matches("^key: ", err)
    assert.has_error(function() core.tls_endpoint { role = "proxy" } end)
    assert.has_error(function() core.tls_endpoint { role = "server" } end)
    assert.has_error(function() core.tls_endpoint { role = "client", alpn = { string.rep("x", 40) } } end)
    ep = assert(core.tls_endpoint { role = "client" })
    assert.is_true(ep:close())
    assert.is_true(ep:close())
    assert.has_error(function() ep:output() end)
  end)
end)

describe("gondolin.ca", function()
  local dir, old

  before_each(function()
    dir = util.tmpdir()
    old = os.getenv "XDG_CACHE_HOME"
    uv.os_setenv("XDG_CACHE_HOME", dir)
    package.loaded["gondolin.ca"] = nil
  end)
  after_each(function()
    if old then uv.os_setenv("XDG_CACHE_HOME", old) else uv.os_unsetenv("XDG_CACHE_HOME") end
    package.loaded["gondolin.ca"] = nil
    os.execute("rm -rf " .. dir)
  end)

  it("opens one CA per process under XDG_CACHE_HOME; rotate leaves the open one working", function()
    local ca = require "gondolin.ca"
    assert.equal(dir .. "/gondolin/ca", ca.dir())
    assert.equal(dir .. "/gondolin/ca/ca.crt", ca.path())
    local a = assert(ca.open())
    assert.equal(a, ca.open())
    assert.equal(read(ca.path()), ca.pem())
    assert.equal(ca.path(), ca.rotate())
    assert.are_not.equal(a:pem(), read(ca.path()))
    assert.matches("BEGIN CERTIFICATE", a:pem())  -- a VM's netif keeps using it
    assert.are_not.equal(a, ca.open())
    assert.equal(read(ca.path()), ca.pem())
  end)

  it("backs `gondolin ca path` and `gondolin ca rotate`", function()
    local env = "XDG_CACHE_HOME=" .. dir .. " "
    local rc, out = util.sh(env .. util.gondolin_cmd("ca path 2>&1"))
    assert.equal(0, rc)
    assert.equal(dir .. "/gondolin/ca/ca.crt\n", out)
    local before = read(dir .. "/gondolin/ca/ca.crt")
    rc, out = util.sh(env .. util.gondolin_cmd("ca rotate 2>&1"))
    assert.equal(0, rc)
    assert.matches(dir .. "/gondolin/ca/ca.crt", out, 1, true)
    assert.matches("running VMs keep the old one", out, 1, true)
    assert.are_not.equal(before, read(dir .. "/gondolin/ca/ca.crt"))
    write(dir .. "/gondolin/ca/ca.crt", "garbage")
    rc, out = util.sh(env .. util.gondolin_cmd("ca path 2>&1"))
    assert.are_not.equal(0, rc)
    assert.matches("gondolin ca rotate", out, 1, true)
    rc, out = util.sh(env .. util.gondolin_cmd("ca frob 2>&1"))
    assert.are_not.equal(0, rc)
    assert.matches("usage: gondolin ca path | rotate", out, 1, true)
  end)
end)

-- The interception CA and its leaves, without a VM: files and permissions,
-- corrupt CAs, leaf verification and the leaf cache; TLS endpoints over memory.
local core = require "gondolin.core"
local uv = require "luv"

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  return d
end

local function mode(path)
  return uv.fs_stat(path).mode & tonumber("777", 8)
end

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

-- Pump bytes between two endpoints until both handshakes end.
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

describe("tls CA", function()
  local dir

  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("is made on first use: key 0600, directory 0700, reused after", function()
    local ca = assert(core.tls_ca(dir))
    assert.equal(tonumber("600", 8), mode(dir .. "/ca.key"))
    assert.equal(tonumber("700", 8), mode(dir))
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", ca:pem())
    local again = assert(core.tls_ca(dir))
    assert.equal(ca:pem(), again:pem())
    assert.is_true(core.tls_ca_rotate(dir))
    assert.are_not.equal(ca:pem(), assert(core.tls_ca(dir)):pem())
  end)

  it("reports a corrupt or exposed CA with the path and how to rotate", function()
    assert(core.tls_ca(dir))
    local key = io.open(dir .. "/ca.key"):read("a")
    write(dir .. "/ca.crt", "garbage")
    local ca, err = core.tls_ca(dir)
    assert.is_nil(ca)
    assert.matches(dir .. "/ca.crt", err, 1, true)
    assert.matches("gondolin ca rotate", err, 1, true)
    assert(core.tls_ca_rotate(dir))
    write(dir .. "/ca.key", key)          -- a key of another CA
    uv.fs_chmod(dir .. "/ca.key", tonumber("600", 8))
    ca, err = core.tls_ca(dir)
    assert.is_nil(ca)
    assert.matches("does not match", err)
    assert(core.tls_ca_rotate(dir))
    uv.fs_chmod(dir .. "/ca.key", tonumber("644", 8))
    ca, err = core.tls_ca(dir)
    assert.is_nil(ca)
    assert.matches("readable by others", err)
    os.remove(dir .. "/ca.key")
    ca, err = core.tls_ca(dir)
    assert.is_nil(ca)
    assert.matches("ca.key is missing", err, 1, true)
  end)

  it("issues leaves that verify for their name only, and only against this CA", function()
    local ca = assert(core.tls_ca(dir))
    local other = assert(core.tls_ca(dir .. "-other"))
    local cert, key = assert(ca:issue("example.test"))
    local function try(trust, sni)
      local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key, alpn = { "http/1.1" } })
      local cli = assert(core.tls_endpoint { role = "client", ca = trust, sni = sni, alpn = { "http/1.1" } })
      local ok, err = handshake(cli, srv)
      return ok, err, cli, srv
    end
    local ok, err, cli, srv = try(ca:pem(), "example.test")
    assert.is_true(ok, err)
    assert.equal("TLSv1.2", cli:info().version)
    assert.equal("http/1.1", cli:info().alpn)
    cli:write("ping")
    srv:feed(cli:output())
    assert.equal("ping", srv:read())
    ok, err = try(ca:pem(), "other.test")
    assert.is_nil(ok)
    assert.matches("CN", err)
    ok, err = try(other:pem(), "example.test")
    assert.is_nil(ok)
    assert.matches("verify failed", err)
    os.execute("rm -rf " .. dir .. "-other")
  end)

  it("puts an iPAddress SAN in leaves for IP literals", function()
    -- mbedTLS 2.28 neither prints nor checks iPAddress SANs: openssl reads them
    local ca = assert(core.tls_ca(dir))
    for name, want in pairs { ["10.1.2.3"] = "IP Address:10.1.2.3", ["::1"] = "IP Address:0:0:0:0:0:0:0:1",
                              ["example.test"] = "DNS:example.test" } do
      local cert = assert(ca:issue(name))
      write(dir .. "/leaf.pem", cert)
      local p = io.popen("openssl x509 -noout -ext subjectAltName -in " .. dir .. "/leaf.pem")
      local out = p:read("a")
      p:close()
      assert.matches(want, out, 1, true)
      p = io.popen(("openssl verify -CAfile %s/ca.crt %s/leaf.pem 2>&1"):format(dir, dir))
      assert.matches("OK", p:read("a"))
      p:close()
    end
  end)

  it("caches leaves by name, case-insensitively, with expiry and LRU eviction", function()
    local ca = assert(core.tls_ca(dir, { leaf_max = 2, leaf_ttl_ms = 50 }))
    assert(ca:leaf("A.test"))
    assert(ca:leaf("a.test"))
    local st = ca:stats()
    assert.equal(1, st.misses)
    assert.equal(1, st.hits)
    assert(ca:leaf("b.test"))
    assert(ca:leaf("c.test"))
    st = ca:stats()
    assert.equal(1, st.evicted)
    assert.equal(2, st.size)
    uv.sleep(80)
    uv.update_time()
    assert(ca:leaf("c.test"))
    assert.equal(st.misses + 1, ca:stats().misses)
    print(("\n  leaf mint: %.2f ms each"):format(ca:stats().mint_us / ca:stats().misses / 1000))
    for _, bad in ipairs { "", "a\nb", string.rep("a", 300), "a,CN=b" } do
      local l, err = ca:leaf(bad)
      assert.is_nil(l)
      assert.matches("not a name", err)
    end
  end)

  it("fails a handshake on garbage, never crashes", function()
    local ca = assert(core.tls_ca(dir))
    local cert, key = ca:issue("example.test")
    for _, junk in ipairs { string.rep("\0", 100), "\22\3\1\0\5hello", ("\22\3\3\255\255"):rep(10) } do
      local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
      srv:feed(junk)
      local ok, err = srv:handshake()
      assert.is_true(ok == nil or ok == false, err)
    end
    -- a truncated ClientHello waits for more
    local cli = assert(core.tls_endpoint { role = "client", sni = "example.test" })
    cli:handshake()
    local hello = cli:output()
    local srv = assert(core.tls_endpoint { role = "server", cert = cert, key = key })
    srv:feed(hello:sub(1, 20))
    assert.is_false(srv:handshake())
  end)
end)

-- gondolin.policy{...}: validation, compilation, placeholders, headers, audit JSON.
local gondolin = require "gondolin"
local policy = require "gondolin.policy"

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("gondolin.policy", function()
  it("compiles an empty policy (deny everything)", function()
    local p = gondolin.policy {}
    assert.is_true(policy.is(p))
    assert.same({}, p.env)
    assert.is_false(p:wants_events())
  end)

  it("accepts the documented options", function()
    local p = gondolin.policy {
      allow = { "example.test", "*.pypi.test:8080", "[::1]:80", "10.1.2.3" },
      allow_internal = { "127.0.0.1:8080", "[::1]:443" },
      resolve = { ["example.test"] = "127.0.0.1", ["multi.test"] = { "127.0.0.1", "::1" } },
      secrets = { TOKEN = { hosts = { "example.test" }, value = "s3cr3t" } },
      on_request = function() end,
      on_response = function() end,
      on_event = function() end,
      audit = os.tmpname(),
    }
    assert.is_true(p:wants_events())
  end)

  it("refuses unknown options and names the accepted ones", function()
    local e = err_of(gondolin.policy, { allow = {}, alow = {} })
    assert.matches("unknown option 'alow'", e, 1, true)
    assert.matches("accepted: allow, allow_internal, audit", e, 1, true)
  end)

  it("names the field and the entry of a bad host pattern", function()
    local e = err_of(gondolin.policy, { allow = { "ok.test", "a.*.test" } })
    assert.matches("policy option 'allow'", e, 1, true)
    assert.matches("allow[2] 'a.*.test'", e, 1, true)
  end)

  it("refuses a bare '*' (no allow-everything wildcard)", function()
    assert.matches("allow[1]", err_of(gondolin.policy, { allow = { "*" } }), 1, true)
  end)

  it("requires exact host:port entries in allow_internal", function()
    local e = err_of(gondolin.policy, { allow_internal = { "127.0.0.1" } })
    assert.matches("policy option 'allow_internal'", e, 1, true)
    e = err_of(gondolin.policy, { allow_internal = { "*.corp.test:80" } })
    assert.matches("allow_internal[1]", e, 1, true)
  end)

  it("checks types and explains the expected shape", function()
    assert.matches("expected a list of strings", err_of(gondolin.policy, { allow = 42 }), 1, true)
    assert.matches("entry 2 must be a string", err_of(gondolin.policy, { allow = { "a.test", 3 } }), 1, true)
    assert.matches("expected a function", err_of(gondolin.policy, { on_request = "x" }), 1, true)
    assert.matches("policy option 'audit'", err_of(gondolin.policy, { audit = 1 }), 1, true)
    assert.matches("options must be a table", err_of(gondolin.policy, "x"), 1, true)
  end)

  it("validates the resolve map: names to IP addresses", function()
    assert.matches("resolve['example.test'] 'not-an-ip'",
      err_of(gondolin.policy, { resolve = { ["example.test"] = "not-an-ip" } }), 1, true)
    assert.matches("must be host names",
      err_of(gondolin.policy, { resolve = { ["10.0.0.1"] = "127.0.0.1" } }), 1, true)
    assert.matches("keys must be host names",
      err_of(gondolin.policy, { resolve = { "127.0.0.1" } }), 1, true)
  end)

  it("validates secrets: name, value, hosts", function()
    assert.matches("is not a secret name",
      err_of(gondolin.policy, { secrets = { ["bad-name"] = { hosts = { "a.test" }, value = "v" } } }), 1, true)
    assert.matches("secrets.T.value",
      err_of(gondolin.policy, { secrets = { T = { hosts = { "a.test" }, value = "" } } }), 1, true)
    assert.matches("secrets.T.hosts",
      err_of(gondolin.policy, { secrets = { T = { hosts = {}, value = "v" } } }), 1, true)
    assert.matches("unknown option 'host'",
      err_of(gondolin.policy, { secrets = { T = { host = "a.test", value = "v" } } }), 1, true)
    assert.matches("secrets.T.hosts[1] 'a.*'",
      err_of(gondolin.policy, { secrets = { T = { hosts = { "a.*" }, value = "v" } } }), 1, true)
    assert.matches("secrets.T.query': expected true or false",
      err_of(gondolin.policy, { secrets = { T = { hosts = { "a.test" }, value = "v", query = "yes" } } }), 1, true)
    assert.matches("secrets.T.body': expected true or false",
      err_of(gondolin.policy, { secrets = { T = { hosts = { "a.test" }, value = "v", body = 1 } } }), 1, true)
    assert.is_table(gondolin.policy { secrets = { T = { hosts = { "a.test" }, value = "v", query = true, body = false } } })
  end)

  it("gives every secret a random placeholder, different per policy", function()
    local spec = { secrets = { TOKEN = { hosts = { "example.test" }, value = "s3cr3t" },
                               OTHER = { hosts = { "*.example.test" }, value = "x" } } }
    local a, b = gondolin.policy(spec), gondolin.policy(spec)
    assert.matches("^GONDOLIN_SECRET_TOKEN_%x+$", a.placeholders.TOKEN)
    assert.equal(16 + 6 + 48, #a.placeholders.TOKEN)
    assert.not_equal(a.placeholders.TOKEN, b.placeholders.TOKEN)
    assert.same({ "OTHER=" .. a.placeholders.OTHER, "TOKEN=" .. a.placeholders.TOKEN }, a.env)
    for _, e in ipairs(a.env) do assert.is_nil(e:find("s3cr3t", 1, true)) end
  end)

  it("is accepted by gondolin.vm and refused when it is something else", function()
    local p = gondolin.policy { secrets = { T = { hosts = { "a.test" }, value = "v" } } }
    local vm = gondolin.vm { policy = p, start = false }
    assert.equal("T=" .. p.placeholders.T, vm.o.env[1])
    assert.matches("vm option 'policy'", err_of(gondolin.vm, { policy = { allow = {} }, start = false }), 1, true)
  end)

  it("writes audit events as JSON lines and calls on_event", function()
    local file = os.tmpname()
    local seen = {}
    local p = gondolin.policy { audit = file, on_event = function(ev) seen[#seen + 1] = ev end }
    p:_emit { decision = "deny", host = "x.test", status = 403, reason = 'quote " and \\ and \n',
              duration = 0.25, reused = false }
    p:_emit { decision = "allow", path = "/a" }
    local f = assert(io.open(file))
    local lines = {}
    for l in f:lines() do lines[#lines + 1] = l end
    f:close()
    os.remove(file)
    assert.equal(2, #seen)
    assert.equal(2, #lines)
    assert.equal('{"decision":"deny","duration":0.250000,"host":"x.test",' ..
      '"reason":"quote \\" and \\\\ and \\n","reused":false,"status":403}', lines[1])
    assert.equal('{"decision":"allow","path":"/a"}', lines[2])
  end)

  it("keeps going when on_event raises", function()
    local p = gondolin.policy { on_event = function() error("listener bug") end }
    local real = io.stderr
    local captured = {}
    io.stderr = { write = function(_, ...) for _, s in ipairs { ... } do captured[#captured + 1] = s end end }
    local ok = pcall(p._emit, p, { decision = "allow" })
    io.stderr = real
    assert.is_true(ok)
    assert.matches("listener bug", table.concat(captured), 1, true)
  end)
end)

describe("policy headers (what hooks see)", function()
  local H = policy.Headers

  it("is case-insensitive and keeps order and duplicates", function()
    local h = H.new { { "Content-Type", "text/plain" }, { "X-A", "1" }, { "x-a", "2" } }
    assert.equal("text/plain", h["content-type"])
    assert.equal("text/plain", h:get("CONTENT-TYPE"))
    assert.same({ "1", "2" }, h:get_all("X-a"))
    assert.equal(3, #h)
    local names = {}
    for n, v in h:each() do names[#names + 1] = n .. "=" .. v end
    assert.same({ "Content-Type=text/plain", "X-A=1", "x-a=2" }, names)
  end)

  it("sets, adds and removes", function()
    local h = H.new { { "A", "1" }, { "B", "2" }, { "a", "3" } }
    h["a"] = "9"
    assert.same({ { "a", "9" }, { "B", "2" } }, h:list())
    h:add("B", "3")
    assert.same({ "2", "3" }, h:get_all("b"))
    h:set("b", { "x", "y" })
    assert.same({ "x", "y" }, h:get_all("B"))
    h.b = nil
    assert.is_nil(h:get("b"))
    assert.has_error(function() h:add("C", {}) end)
  end)
end)

-- SPDX-License-Identifier: MIT
-- secrets_spec.lua - placeholders, substitution, Basic auth and masking
local core = require "gondolin.core"

local function b64(s)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((s:gsub(".", function(c)
    local r, b = "", c:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return abc:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local function rnd(seed)
  local t = {}
  for i = 1, 24 do t[i] = string.char((seed * 31 + i * 7) % 256) end
  return table.concat(t)
end

local function secret(name, value, hosts, seed)
  return { name = name, value = value, hosts = hosts,
           placeholder = core.secret_placeholder(name, rnd(seed)) }
end

-- Feed chunks through a secret stream (masker or filler) and finish it;
-- nil, why, name when the stream refused.
local function run_stream(m, chunks)
  local out = {}
  for _, c in ipairs(chunks) do
    local o, why, name = m:feed(c)
    if not o then return nil, why, name end
    out[#out + 1] = o
  end
  local o, why, name = m:finish()
  if not o then return nil, why, name end
  out[#out + 1] = o
  return table.concat(out)
end

describe("core.secret_placeholder", function()
  it("is the prefix, the name and 48 lower-case hex digits", function()
    local ph = core.secret_placeholder("API_KEY", string.rep("\xab", 24))
    assert.equal("GONDOLIN_SECRET_API_KEY_" .. string.rep("ab", 24), ph)
    assert.truthy(core.secret_placeholder("x", rnd(1)):match("^GONDOLIN_SECRET_x_%x+$"))
  end)

  it("differs with the random bytes", function()
    assert.not_equal(core.secret_placeholder("A", rnd(1)), core.secret_placeholder("A", rnd(2)))
  end)

  it("refuses bad names and random lengths", function()
    assert.has_error(function() core.secret_placeholder("", rnd(1)) end)
    assert.has_error(function() core.secret_placeholder("A-B", rnd(1)) end)
    assert.has_error(function() core.secret_placeholder(string.rep("A", 65), rnd(1)) end)
    assert.has_error(function() core.secret_placeholder("A", "short") end)
  end)

  it("must match its secret when substituting", function()
    local s = secret("A", "v", { "example.com" }, 1)
    s.placeholder = core.secret_placeholder("B", rnd(1))
    assert.has_error(function() core.secret_substitute("x", "example.com", { s }) end)
    s.placeholder = s.placeholder:upper()
    assert.has_error(function() core.secret_substitute("x", "example.com", { s }) end)
  end)
end)

describe("core.secret_substitute", function()
  local key = secret("API_KEY", "secret-value", { "example.com", "*.example.net:443" }, 1)
  local other = secret("OTHER", "other-value", { "other.org" }, 2)
  local secrets = { key, other }

  it("replaces the placeholder toward a matching host", function()
    local v, n = core.secret_substitute("Bearer " .. key.placeholder, "example.com", secrets)
    assert.equal("Bearer secret-value", v)
    assert.equal(1, n)
    v, n = core.secret_substitute(key.placeholder .. "," .. key.placeholder, "EXAMPLE.com.", secrets)
    assert.equal("secret-value,secret-value", v)
    assert.equal(2, n)
    assert.equal("k=secret-value", core.secret_substitute("k=" .. key.placeholder, "api.example.net", secrets, 443))
  end)

  it("leaves values without placeholders alone", function()
    assert.same({ "text/html", 0 }, { core.secret_substitute("text/html", "example.com", secrets) })
    assert.same({ "", 0 }, { core.secret_substitute("", "example.com", secrets) })
    local partial = key.placeholder:sub(1, -2)
    assert.same({ partial, 0 }, { core.secret_substitute(partial, "example.com", secrets) })
  end)

  it("blocks a placeholder headed to a host its secret does not allow", function()
    assert.same({ nil, "blocked", "API_KEY" },
      { core.secret_substitute("Bearer " .. key.placeholder, "example.org", secrets) })
    assert.same({ nil, "blocked", "API_KEY" },
      { core.secret_substitute(key.placeholder, "sub.example.com", secrets) })
    assert.same({ nil, "blocked", "API_KEY" },
      { core.secret_substitute(key.placeholder, "api.example.net", secrets, 8443) })
    assert.same({ nil, "blocked", "OTHER" },
      { core.secret_substitute(key.placeholder .. other.placeholder, "example.com", secrets) })
  end)

  it("blocks a real value sent literally to a host its secret does not allow", function()
    assert.same({ nil, "blocked", "API_KEY" },
      { core.secret_substitute("Bearer secret-value", "example.org", secrets) })
    assert.same({ nil, "blocked", "API_KEY" },
      { core.secret_substitute("prefix-secret-value-suffix", "other.org", secrets) })
    assert.same({ "Bearer secret-value", 0 },
      { core.secret_substitute("Bearer secret-value", "example.com", secrets) })
  end)

  it("does not look for values inside placeholders", function()
    local hex = secret("HEX", key.placeholder:sub(-10), { "nowhere.example" }, 3)
    local v = core.secret_substitute(key.placeholder, "example.com", { key, hex })
    assert.equal("secret-value", v)
  end)

  it("reports results that do not fit", function()
    local big = secret("BIG", string.rep("x", 4096), { "example.com" }, 4)
    local v, msg, code = core.secret_substitute(string.rep(big.placeholder, 20), "example.com", { big })
    assert.is_nil(v)
    assert.equal("truncated", code)
    assert.is_string(msg)
  end)

  it("refuses malformed secrets lists", function()
    assert.has_error(function() core.secret_substitute("x", "example.com", { 1 }) end)
    assert.has_error(function()
      core.secret_substitute("x", "example.com", { { name = "A", value = "v", placeholder = "p" } })
    end)
    local s = secret("A", "", { "example.com" }, 1)
    assert.has_error(function() core.secret_substitute("x", "example.com", { s }) end)
    s = secret("A", "v", { "*" }, 1)
    assert.has_error(function() core.secret_substitute("x", "example.com", { s }) end)
  end)
end)

describe("core.basic_auth_substitute", function()
  local user = secret("USER", "alice", { "example.com" }, 5)
  local pass = secret("PASS", "s3cr3t", { "example.com" }, 6)
  local secrets = { user, pass }

  it("substitutes inside the decoded credentials and re-encodes them", function()
    local v, n = core.basic_auth_substitute("Basic " .. b64(user.placeholder .. ":" .. pass.placeholder),
      "example.com", secrets)
    assert.equal("Basic " .. b64("alice:s3cr3t"), v)
    assert.equal(2, n)
    v = core.basic_auth_substitute("  bAsIc \t" .. b64("bob:" .. pass.placeholder) .. " ", "example.com", secrets)
    assert.equal("  bAsIc \t" .. b64("bob:s3cr3t") .. " ", v)
  end)

  it("blocks credentials headed to another host", function()
    assert.same({ nil, "blocked", "PASS" },
      { core.basic_auth_substitute("Basic " .. b64("bob:" .. pass.placeholder), "example.org", secrets) })
    assert.same({ nil, "blocked", "PASS" },
      { core.basic_auth_substitute("Basic " .. b64("bob:s3cr3t"), "example.org", secrets) })
  end)

  it("copies other values unchanged", function()
    local cases = {
      "Bearer abc", "Basic", "Basic ", "Basic !!!!", "Basic YWJj",
      "Basic " .. b64("bob:pw"), "Basic YQ=", "Basic YR==", "Basicx " .. b64("a:b"),
      "Basic " .. b64("a:b") .. " junk",
    }
    for _, c in ipairs(cases) do
      assert.same({ c, 0 }, { core.basic_auth_substitute(c, "example.com", secrets) })
    end
  end)

  it("ignores non-canonical base64 instead of guessing", function()
    local tok = b64(user.placeholder .. ":x")
    local v, n = core.basic_auth_substitute("Basic " .. tok:gsub("=", ""), "example.com", secrets)
    assert.equal(0, n)
    assert.equal("Basic " .. tok:gsub("=", ""), v)
  end)
end)

describe("core.secret_mask", function()
  local a = secret("A", "secret-value", { "example.com" }, 7)
  local b = secret("B", "secret-value-long", { "example.com" }, 8)
  local secrets = { a, b }

  it("replaces echoed values by their placeholders", function()
    local v, n = core.secret_mask('{"token":"secret-value"} secret-value', secrets)
    assert.equal('{"token":"' .. a.placeholder .. '"} ' .. a.placeholder, v)
    assert.equal(2, n)
    assert.same({ "nothing here", 0 }, { core.secret_mask("nothing here", secrets) })
  end)

  it("prefers the longest value at a position", function()
    assert.equal(b.placeholder .. "!", core.secret_mask("secret-value-long!", secrets))
    assert.equal(a.placeholder .. "-lon", core.secret_mask("secret-value-lon", secrets))
  end)
end)

describe("core.secret_masker", function()
  local a = secret("A", "secret-value", { "example.com" }, 7)
  local b = secret("B", "secret-value-long", { "example.com" }, 8)
  local secrets = { a, b }

  local function stream(chunks)
    local m = core.secret_masker(secrets)
    return run_stream(m, chunks), m:count()
  end

  it("masks a value split across two chunks", function()
    local out, n = stream { "hello secr", "et-value world" }
    assert.equal("hello " .. a.placeholder .. " world", out)
    assert.equal(1, n)
  end)

  it("holds back only what could start a value", function()
    local m = core.secret_masker(secrets)
    assert.equal("abc ", m:feed("abc secret-v"))
    assert.equal("", m:feed("alue"))
    assert.equal(a.placeholder .. "x", m:feed("x"))
    assert.equal("", m:finish())
  end)

  it("flushes a held prefix that never completed", function()
    assert.equal("tail secret-val", stream { "tail secret-val" })
  end)

  it("gives the same result as secret_mask for every split", function()
    local text = "x secret-value-long y secret-value z secret-value-lo secret-value"
    local want = core.secret_mask(text, secrets)
    for i = 0, #text do
      for j = i, #text, 7 do
        assert.equal(want, (stream { text:sub(1, i), text:sub(i + 1, j), text:sub(j + 1) }))
      end
    end
    local bytes = {}
    for i = 1, #text do bytes[i] = text:sub(i, i) end
    assert.equal(want, (stream(bytes)))
  end)

  it("handles large chunks", function()
    local text = string.rep("a", 100000) .. "secret-value" .. string.rep("b", 50000)
    local out, n = stream { text:sub(1, 100005), text:sub(100006) }
    assert.equal(string.rep("a", 100000) .. a.placeholder .. string.rep("b", 50000), out)
    assert.equal(1, n)
  end)
end)

describe("core.secret_target_substitute", function()
  local q = secret("TOKEN", "s3cr3t+/=?& x", { "example.com" }, 11)
  q.query = true
  local h = secret("HDR", "header-only", { "example.com" }, 12)
  local secrets = { q, h }

  local function unescape(s)
    return (s:gsub("%%(%x%x)", function(x) return string.char(tonumber(x, 16)) end))
  end

  it("fills an opted-in placeholder in the query, percent-encoded", function()
    local out, n = core.secret_target_substitute("/api?token=" .. q.placeholder .. "&a=1", "example.com", secrets)
    assert.equal(1, n)
    assert.equal("/api?token=s3cr3t%2B%2F%3D%3F%26%20x&a=1", out)
    assert.equal(q.value, unescape(out:match("token=([^&]*)")))
  end)

  it("leaves the path and secrets without query = true untouched", function()
    local t = "/p/" .. q.placeholder .. "?h=" .. h.placeholder
    local out, n = core.secret_target_substitute(t, "example.com", secrets)
    assert.equal(0, n)
    assert.equal(t, out)
  end)

  it("leaves a target without placeholders as it is", function()
    assert.equal("/a?b=c#d", (core.secret_target_substitute("/a?b=c#d", "example.com", secrets)))
  end)

  it("refuses any placeholder, in path or query, toward another host", function()
    for _, t in ipairs { "/x?t=" .. q.placeholder, "/" .. q.placeholder, "/?h=" .. h.placeholder } do
      local out, why, name = core.secret_target_substitute(t, "evil.org", secrets)
      assert.is_nil(out)
      assert.equal("blocked", why)
      assert.truthy(name == "TOKEN" or name == "HDR")
    end
  end)

  it("refuses a real value in the target toward another host", function()
    local out, why = core.secret_target_substitute("/x?v=header-only", "evil.org", secrets)
    assert.is_nil(out)
    assert.equal("blocked", why)
  end)
end)

describe("core.secret_filler", function()
  local b = secret("BODY", "real-body-secret", { "example.com" }, 21)
  b.body = true
  local plain = secret("PLAIN", "not-in-bodies", { "example.com" }, 22)
  local secrets = { b, plain }

  local function fill(host, chunks)
    local m, resizes = core.secret_filler(secrets, host)
    local out, why, name = run_stream(m, chunks)
    if not out then return nil, why, name end
    return out, m:count(), resizes
  end

  it("replaces opted-in placeholders toward their host, for every split", function()
    local text = '{"key":"' .. b.placeholder .. '","p":"' .. plain.placeholder .. '"} ' .. b.placeholder
    local want = '{"key":"real-body-secret","p":"' .. plain.placeholder .. '"} real-body-secret'
    for i = 0, #text, 3 do
      local out, n, resizes = fill("example.com", { text:sub(1, i), text:sub(i + 1) })
      assert.equal(want, out)
      assert.equal(2, n)
      assert.is_true(resizes)
    end
    local bytes = {}
    for i = 1, #text do bytes[i] = text:sub(i, i) end
    assert.equal(want, (fill("example.com", bytes)))
  end)

  it("passes bodies unchanged toward other hosts and can not resize them", function()
    local text = "no placeholder here, just GONDOLIN_SECRET_ and " .. plain.placeholder
    local out, n, resizes = fill("other.org", { text })
    assert.equal(text, out)
    assert.equal(0, n)
    assert.is_false(resizes)
  end)

  it("stops at an opted-in placeholder headed to another host", function()
    local out, why, name = fill("other.org", { "abc ", b.placeholder:sub(1, 30), b.placeholder:sub(31) .. " def" })
    assert.is_nil(out)
    assert.equal("blocked", why)
    assert.equal("BODY", name)
  end)

  it("ignores secrets that did not opt in to bodies", function()
    local _, resizes = core.secret_filler({ plain }, "example.com")
    assert.is_false(resizes)
  end)
end)

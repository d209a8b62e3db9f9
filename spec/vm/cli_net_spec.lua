-- The CLI's network policy flags, against a loopback server in this process.
local util = require "helpers.util"

describe("gondolin exec network flags", function()
  local srv

  setup(function() srv = require("helpers.http_server").start() end)
  teardown(function() srv:close() end)

  local function gondolin_exec(flags, script, env)
    local argv = { "bin/gondolin", "exec", "--image", "minimal" }
    for _, f in ipairs(flags) do argv[#argv + 1] = f end
    for _, a in ipairs { "--", "/bin/sh", "-c", script } do argv[#argv + 1] = a end
    return util.run(argv, env)
  end

  local function base(port)
    return { "--allow-host", "example.test", "--resolve", "example.test=127.0.0.1",
             "--allow-internal", "127.0.0.1:" .. port }
  end

  it("denies everything without --allow-host", function()
    local code, out = gondolin_exec({}, ("wget -q -O- http://example.test:%d/hello; echo rc=$?"):format(srv.port))
    assert.equal(0, code)
    assert.matches("rc=1", out)
  end)

  it("lets allowed hosts through and injects secrets only toward their hosts", function()
    local flags = base(srv.port)
    for _, f in ipairs { "--secret", "TOKEN@example.test=GONDOLIN_SPEC_TOKEN",
                         "--secret", "Q@example.test=GONDOLIN_SPEC_Q:query" } do
      flags[#flags + 1] = f
    end
    local code, out = gondolin_exec(flags, ([[
      echo "guest sees: $TOKEN"
      wget -q -O /dev/null "http://example.test:%d/echo?q=$Q&t=$TOKEN"
      wget -q -O- --header "Authorization: Bearer $TOKEN" http://example.test:%d/echo]]):format(srv.port, srv.port),
      { GONDOLIN_SPEC_TOKEN = "real-value-42", GONDOLIN_SPEC_Q = "q v" })
    assert.equal(0, code, out)
    -- :query fills Q in the query, percent-encoded; TOKEN only goes in headers
    local q = srv.requests[#srv.requests - 1]
    assert.matches("^/echo%?q=q%%20v&t=GONDOLIN_SECRET_TOKEN_%x+$", q.path)
    local placeholder = out:match("guest sees: (GONDOLIN_SECRET_TOKEN_%x+)")
    assert.truthy(placeholder)
    -- the server got the real value ...
    local last = srv.requests[#srv.requests]
    assert.equal("Bearer real-value-42", last.headers.authorization)
    -- ... and its echo was masked back before the guest saw it
    assert.is_nil(out:find("real-value-42", 1, true))
    assert.truthy(out:find("Bearer " .. placeholder, 1, true))
  end)

  it("refuses malformed flags with one clear line", function()
    local code, _, err = util.run { "bin/gondolin", "exec", "--secret", "oops", "--", "true" }
    assert.equal(2, code)
    assert.matches("^gondolin: %-%-secret expects NAME@HOST", err)
    code, _, err = util.run { "bin/gondolin", "exec", "--allow-host", "bad host!", "--", "true" }
    assert.equal(1, code)
    assert.matches("^gondolin: policy option 'allow'", err)
    assert.is_nil(err:find("traceback", 1, true))
  end)
end)

-- Option validation happens before anything boots.
local gondolin = require "gondolin"
local cli = require "gondolin.cli"
local check = require "gondolin.check"
local exec = require "gondolin.exec"

describe("gondolin.vm options", function()
  local function err_of(opts)
    local ok, err = pcall(gondolin.vm, opts)
    assert.is_false(ok)
    return err
  end

  it("names an unknown option and lists the accepted ones", function()
    local err = err_of { start = false, memroy = "1G" }
    assert.matches("unknown option 'memroy'", err)
    assert.matches("accepted: .*memory", err)
  end)

  it("explains bad values", function()
    assert.matches("'lots' is not a memory size", err_of { start = false, memory = "lots" })
    assert.matches("cpus.*out of range", err_of { start = false, cpus = 99 })
    assert.matches("accel.*accepted: auto, kvm, tcg", err_of { start = false, accel = "hvf" })
    assert.matches("boot_timeout", err_of { start = false, boot_timeout = -1 })
    assert.matches("not a variable name", err_of { start = false, env = { ["1X"] = "y" } })
  end)

  it("parses memory sizes", function()
    assert.equal(512, check.memory("m", "512M"))
    assert.equal(512, check.memory("m", 512))
    assert.equal(2048, check.memory("m", "2G"))
    assert.equal(1024, check.memory("m", "1GiB"))
    assert.has_error(function() check.memory("m", "12") end)
    assert.has_error(function() check.memory("m", "1T") end)
  end)

  it("accepts env as a map or a NAME=value list", function()
    assert.same({ "A=1", "B=x" }, check.env("e", { B = "x", A = 1 }))
    assert.same({ "Z=1", "A=2" }, check.env("e", { "Z=1", "A=2" }))
    assert.has_error(function() check.env("e", { "novalue" }) end)
  end)
end)

describe("exec options", function()
  local defaults = { env = {} }
  it("turns a string into /bin/sh -c", function()
    local argv = exec.validate("echo hi", nil, defaults)
    assert.same({ "/bin/sh", "-c", "echo hi" }, argv)
  end)

  it("refuses bad commands and options", function()
    assert.has_error(function() exec.validate({}, nil, defaults) end)
    assert.has_error(function() exec.validate({ "a", 1 }, nil, defaults) end)
    assert.has_error(function() exec.validate("x", { timeout = 0 }, defaults) end)
    assert.has_error(function() exec.validate("x", { stdout = "file" }, defaults) end)
    assert.has_error(function() exec.validate("x", { stdin = 5 }, defaults) end)
    local ok, err = pcall(exec.validate, "x", { pyt = true }, defaults)
    assert.is_false(ok)
    assert.matches("unknown option 'pyt'.*pty", err)
  end)
end)

describe("cli.parse", function()
  it("parses flags, repeated --env and the command after --", function()
    local o, cmd = cli.parse({ "exec", "--memory", "1G", "--env", "A=1", "--env=B=2", "--cpus=2", "--", "ls", "-l" }, 2)
    assert.equal("1G", o.memory)
    assert.equal(2, o.cpus)
    assert.same({ "A=1", "B=2" }, o.env)
    assert.same({ "ls", "-l" }, cmd)
  end)

  it("names unknown flags and lists valid ones", function()
    local o, err = cli.parse({ "exec", "--bogus" }, 2)
    assert.is_nil(o)
    assert.matches("unknown option '%-%-bogus'.*%-%-memory", err)
    o, err = cli.parse({ "exec", "--memory" }, 2)
    assert.matches("needs a value", err)
    o, err = cli.parse({ "exec", "--env", "oops" }, 2)
    assert.matches("NAME=value", err)
  end)

  it("takes --secret with optional :query and :body", function()
    local o = cli.parse({ "exec", "--secret", "T@a.test,*.b.test:8080=ENV_T:query:body", "--secret", "U@c.test=U" }, 2)
    assert.same({ "T@a.test,*.b.test:8080=ENV_T:query:body", "U@c.test=U" }, o.secret)
    for _, bad in ipairs { "T@a.test=ENV:bogus", "T@a.test=ENV:", "T@=ENV", "T=ENV" } do
      local _, err = cli.parse({ "exec", "--secret", bad }, 2)
      assert.matches("NAME@HOST%[,HOST...%]=ENVVAR%[:query%]%[:body%]", err)
    end
  end)

  it("returns exit status 2 with usage for no arguments", function()
    assert.equal(0, cli.main { "--help" })
  end)
end)

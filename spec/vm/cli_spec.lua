local util = require "helpers.util"

describe("gondolin CLI", function()
  it("passes the command's exit status through", function()
    local rc, out = util.sh("bin/gondolin exec --image minimal -- sh -c 'echo out; exit 7' 2>/dev/null")
    assert.equal(7, rc)
    assert.equal("out\n", out)
  end)

  it("forwards piped stdin and env", function()
    local rc, out = util.sh("printf 'a\\nb\\n' | bin/gondolin exec --image minimal --env X=42 -- sh -c 'cat; echo $X'")
    assert.equal(0, rc)
    assert.equal("a\nb\n42\n", out)
  end)

  it("runs a script with its arguments and exit code", function()
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write([[
      local gondolin = require "gondolin"
      local vm <close> = gondolin.vm { image = "minimal" }
      io.write(vm:exec({ "echo", arg[1] }).stdout)
      return 5]])
    f:close()
    local rc, out = util.sh("bin/gondolin " .. path .. " hello")
    os.remove(path)
    assert.equal(5, rc)
    assert.equal("hello\n", out)
  end)

  it("gives an interactive shell a pty", function()
    local rc, out = util.sh("printf 'tty\\nexit 4\\n' | bin/gondolin bash --image minimal")
    assert.equal(4, rc)
    assert.matches("/dev/pts/%d", out)
  end)

  it("rejects unknown flags listing the valid ones", function()
    local rc, out = util.sh("bin/gondolin exec --image minimal --frobnicate -- true 2>&1")
    assert.equal(2, rc)
    assert.matches("unknown option '%-%-frobnicate'", out)
    assert.matches("%-%-memory", out)
  end)

  it("prints help and version", function()
    local rc, out = util.sh("bin/gondolin --help")
    assert.equal(0, rc)
    assert.matches("gondolin exec", out)
    rc, out = util.sh("bin/gondolin --version")
    assert.equal(0, rc)
    assert.matches("^gondolin %d", out)
  end)
end)

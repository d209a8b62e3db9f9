-- lua/gondolin/proto.lua must mirror csrc/proto/frame.h.
local P = require "gondolin.proto"

describe("gondolin.proto", function()
  it("matches every frame type in csrc/proto/frame.h", function()
    local f = assert(io.open("csrc/proto/frame.h"))
    local header = f:read("a")
    f:close()
    local n = 0
    for name, value in header:gmatch("FRAME_([%u_]+)%s*=%s*(0x%x+)") do
      assert.equal(tonumber(value), P[name], "FRAME_" .. name)
      n = n + 1
    end
    assert.is_true(n >= 15)
    assert.equal(tonumber(header:match("#define PROTO_VERSION%s+(%d+)")), P.VERSION)
    assert.equal(256 * 1024, P.MAX_PAYLOAD)
    assert.truthy(header:find("FRAME_MAX_PAYLOAD%s+%(256 %* 1024%)"))
  end)
end)

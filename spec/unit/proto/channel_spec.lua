-- core.channel: frame reassembly and sending over a socketpair.
local core = require "gondolin.core"
local uv = require "luv"

local function be32(n) return string.pack(">I4", n) end
local function frame(t, id, payload) return be32(#payload) .. string.char(t) .. be32(id) .. payload end

-- Open a channel on one end; return it, the raw peer pipe and the event log.
local function pair(opts)
  local a, b = core.socketpair()
  local log = { frames = {}, errors = {}, closed = nil }
  opts = opts or {}
  local ch = core.channel(a, {
    max_payload = opts.max_payload,
    on_frame = function(t, id, p) log.frames[#log.frames + 1] = { t, id, p } end,
    on_error = function(code) log.errors[#log.errors + 1] = code end,
    on_close = function(why) log.closed = why end,
  })
  local peer = uv.new_pipe(false)
  peer:open(b)
  return ch, peer, log
end

local function pump(cond)
  local deadline = uv.hrtime() + 2e9
  while not cond() and uv.hrtime() < deadline do uv.run("nowait") uv.sleep(1) end
end

local function write_chunks(peer, bytes, size)
  for i = 1, #bytes, size do peer:write(bytes:sub(i, i + size - 1)) end
end

describe("core.channel", function()
  it("reassembles frames split into 1-byte chunks and packed several per chunk", function()
    local ch, peer, log = pair()
    local small = frame(0x42, 7, "hello") .. frame(0x43, 8, "")
    local big = frame(0x45, 9, string.rep("x", 70000))
    write_chunks(peer, small .. big:sub(1, 20), 1)
    write_chunks(peer, big:sub(21), 997)
    local stream = small .. big
    pump(function() return #log.frames == 3 end)
    assert.same({ 0x42, 7, "hello" }, log.frames[1])
    assert.same({ 0x43, 8, "" }, log.frames[2])
    assert.equal(70000, #log.frames[3][3])
    peer:write(stream .. stream)
    pump(function() return #log.frames == 9 end)
    assert.equal(9, #log.frames)
    ch:close() peer:close()
  end)

  it("skips an oversized frame, reports it once and stays in sync", function()
    local ch, peer, log = pair { max_payload = 1024 }
    local stream = frame(1, 1, "a") .. frame(2, 2, string.rep("z", 5000)) .. frame(3, 3, "b")
    write_chunks(peer, stream, 333)
    pump(function() return #log.frames == 2 end)
    assert.same({ { 1, 1, "a" }, { 3, 3, "b" } }, log.frames)
    assert.same({ "oversized" }, log.errors)
    ch:close() peer:close()
  end)

  it("skips a length prefix far above the protocol limit without buffering it", function()
    local ch, peer, log = pair()
    peer:write(be32(0xfffffff0) .. "\1" .. be32(1) .. string.rep("g", 100000))
    pump(function() return #log.errors == 1 end)
    assert.same({ "oversized" }, log.errors)
    assert.equal(0, #log.frames)
    assert.is_nil(log.closed)
    ch:close() peer:close()
  end)

  it("reports the peer hanging up mid-frame", function()
    local ch, peer, log = pair()
    peer:write(be32(10) .. "\1" .. be32(1) .. "abc")
    peer:close()
    pump(function() return log.closed ~= nil end)
    assert.equal("eof", log.closed)
    assert.equal(0, #log.frames)
    ch:close()
  end)

  it("sends frames with the 9-byte header", function()
    local ch, peer = pair()
    local got = {}
    peer:read_start(function(_, data) if data then got[#got + 1] = data end end)
    assert.is_true(ch:send(0x07, 42, "ping"))
    assert.is_true(ch:send(0x03, 43))
    pump(function() return #table.concat(got) >= 22 end)
    assert.equal(frame(0x07, 42, "ping") .. frame(0x03, 43, ""), table.concat(got))
    ch:close() peer:close()
  end)

  it("refuses misuse with errors naming the argument", function()
    local ch, peer = pair()
    assert.has_error(function() ch:send(300, 1, "") end, "bad argument #1 to 'send' (frame type out of range)")
    assert.has_error(function() ch:send(1, -1, "") end)
    assert.has_error(function() ch:send(1, 1, string.rep("x", 256 * 1024 + 1)) end)
    ch:close()
    ch:close()   -- second close does nothing
    assert.has_error(function() ch:send(1, 1, "") end)
    peer:close()
  end)

  it("is collected when unreachable", function()
    local ch, peer = pair()
    local weak = setmetatable({ ch }, { __mode = "v" })
    ch = nil   -- luacheck: ignore
    collectgarbage() collectgarbage()
    assert.is_nil(weak[1])
    peer:close()
    uv.run("nowait")
  end)
end)

-- exec.lua - exec sessions on the host side: one Proc per guest process.
--
-- Output flow control (docs/protocol.md): the guest may send `window` bytes
-- per stream before we return credit. Credit goes back when bytes are
-- consumed: at once in "buffer" and "ignore" modes, after the callback
-- returns in callback mode, when p:read() hands a chunk over in "pipe" mode.
-- A slow consumer therefore slows the guest process instead of growing our
-- memory.
local core = require "gondolin.core"
local sched = require "gondolin.sched"
local check = require "gondolin.check"
local P = require "gondolin.proto"
local uv = require "luv"

local M = {}

M.SIGNALS = {
  HUP = 1, INT = 2, QUIT = 3, ILL = 4, TRAP = 5, ABRT = 6, BUS = 7, FPE = 8, KILL = 9,
  USR1 = 10, SEGV = 11, USR2 = 12, PIPE = 13, ALRM = 14, TERM = 15, CHLD = 17,
  CONT = 18, STOP = 19, TSTP = 20, TTIN = 21, TTOU = 22, URG = 23, XCPU = 24,
  XFSZ = 25, VTALRM = 26, PROF = 27, WINCH = 28, IO = 29, PWR = 30, SYS = 31,
}
local SIGNAMES = {}
for k, v in pairs(M.SIGNALS) do SIGNAMES[v] = k end

local DEFAULT_WINDOW = 256 * 1024
local DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024
local STREAM = { [P.EXEC_STDOUT] = "stdout", [P.EXEC_STDERR] = "stderr" }

local OPTIONS = { "env", "cwd", "stdin", "pty", "rows", "cols", "timeout", "window",
                  "stdout", "stderr", "on_stdout", "on_stderr", "max_output" }

local Proc = {}
Proc.__index = Proc

--- Validate (argv or command string, opts); returns argv list and clean opts.
function M.validate(cmd, opts, defaults)
  local argv
  if type(cmd) == "string" then
    argv = { "/bin/sh", "-c", cmd }
  elseif type(cmd) == "table" then
    argv = {}
    for i, a in ipairs(cmd) do
      if type(a) ~= "string" then check.fail("exec", ("argv[%d] is a %s, expected a string"):format(i, type(a)), 2) end
      argv[i] = a
    end
    if #argv == 0 then check.fail("exec", "argv is empty (expected {\"program\", args...})", 2) end
  else
    check.fail("exec", "expected a command string or an argv table, got " .. type(cmd), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then check.fail("exec", "options must be a table", 2) end
  check.known("exec", opts, OPTIONS)
  local o = { pty = false }
  local env = {}
  for _, e in ipairs(defaults.env or {}) do env[#env + 1] = e end
  for _, e in ipairs(check.env("exec option 'env'", opts.env)) do env[#env + 1] = e end
  o.env = env
  o.cwd = opts.cwd or defaults.cwd
  if o.cwd ~= nil then
    check.string("exec option 'cwd'", o.cwd)
    if o.cwd:sub(1, 1) ~= "/" then check.fail("exec option 'cwd'", "must be an absolute path, got " .. o.cwd, 2) end
  end
  if opts.pty ~= nil then o.pty = check.boolean("exec option 'pty'", opts.pty) end
  if opts.rows ~= nil then o.rows = check.integer("exec option 'rows'", opts.rows, 1, 65535) end
  if opts.cols ~= nil then o.cols = check.integer("exec option 'cols'", opts.cols, 1, 65535) end
  if opts.timeout ~= nil then o.timeout = check.number("exec option 'timeout'", opts.timeout, 0.001, 31536000) end
  o.window = opts.window and check.integer("exec option 'window'", opts.window, 4096, 16 * 1024 * 1024)
    or DEFAULT_WINDOW
  o.max_output = opts.max_output and check.integer("exec option 'max_output'", opts.max_output, 0, math.maxinteger)
    or DEFAULT_MAX_OUTPUT
  local s = opts.stdin
  if s ~= nil and s ~= false and s ~= true and type(s) ~= "string" then
    check.fail("exec option 'stdin'", "expected a string, true (write with p:write) or false, got " .. type(s), 2)
  end
  o.stdin = s
  for _, name in ipairs { "stdout", "stderr" } do
    local cb = opts["on_" .. name]
    if cb ~= nil and type(cb) ~= "function" then check.fail("exec option 'on_" .. name .. "'", "expected a function", 2) end
    local mode = opts[name]
    if mode ~= nil then check.oneof("exec option '" .. name .. "'", mode, { "buffer", "pipe", "ignore" }) end
    o[name] = cb and "callback" or mode or "buffer"
    o["on_" .. name] = cb
  end
  return argv, o
end

--- Start argv in the VM; returns a Proc (the guest answers asynchronously).
function M.start(vm, id, argv, o)
  local self = setmetatable({
    vm = vm, id = id, argv = argv, o = o,
    mode = { stdout = o.stdout, stderr = o.stderr },
    bufs = { stdout = {}, stderr = {} }, sizes = { stdout = 0, stderr = 0 },
    queue = { stdout = {}, stderr = {} }, readable = {},
    cbq = {}, pending = { stdout = 0, stderr = 0 },
    stdin_credit = 0, stdin_open = o.pty or (o.stdin ~= nil and o.stdin ~= false),
    done = sched.event(), exited = false, truncated = false,
  }, Proc)
  local msg = { argv = argv, window = o.window }
  if #o.env > 0 then msg.env = o.env end
  msg.cwd = o.cwd
  if o.pty then msg.pty, msg.rows, msg.cols = true, o.rows or 24, o.cols or 80 end
  msg.stdin = self.stdin_open
  if o.timeout then msg.timeout_ms = math.max(1, math.floor(o.timeout * 1000 + 0.5)) end
  local ok, err = vm:_send(P.EXEC_START, id, core.cbor_encode(msg))
  if not ok then self:_finish(nil, err) return self end
  if o.timeout then
    -- backstop in case the agent itself stops answering
    self.backstop = uv.new_timer()
    self.backstop:start(math.floor((o.timeout + 5) * 1000), 0, function()
      self:_finish(nil, "timeout: the guest agent did not end the process")
    end)
  end
  if o.stdout == "callback" or o.stderr == "callback" then
    sched.spawn(function() self:_pump() end)
  end
  return self
end

-- Give consumed output bytes back to the guest, coalesced.
function Proc:_consume(stream, n)
  if self.exited or n == 0 then return end
  local p = self.pending
  p[stream] = p[stream] + n
  if p[stream] >= self.o.window // 4 then
    self.vm:_send(P.EXEC_CREDIT, self.id, core.cbor_encode { stdout = p.stdout, stderr = p.stderr })
    p.stdout, p.stderr = 0, 0
  end
end

local function wake(self, key)
  local ev = self.readable[key]
  if ev then self.readable[key] = nil sched.fire(ev) end
end

-- Output past max_output is dropped (the credit still goes back, so the
-- process runs to its end): once per process, a limit event.
function Proc:_truncated()
  if self.truncated then return end
  self.truncated = true
  self.vm:_on_limit("exec_output")
end

function Proc:_output(stream, data)
  local mode = self.mode[stream]
  if mode == "buffer" then
    local room = self.o.max_output - self.sizes[stream]
    if #data > room then
      self:_truncated()
      data = data:sub(1, math.max(room, 0))
    end
    if #data > 0 then
      local b = self.bufs[stream]
      b[#b + 1] = data
      self.sizes[stream] = self.sizes[stream] + #data
    end
    self:_consume(stream, #data == 0 and 0 or #data)
    return
  elseif mode == "ignore" then
    self:_consume(stream, #data)
  elseif mode == "pipe" then
    local q = self.queue[stream]
    q[#q + 1] = data
    wake(self, stream)
  else
    self.cbq[#self.cbq + 1] = { stream, data }
    wake(self, "cb")
  end
end

function Proc:_on_frame(t, payload)
  if t == P.EXEC_STDOUT or t == P.EXEC_STDERR then
    local stream = STREAM[t]
    if self.mode[stream] == "buffer" and self.sizes[stream] + #payload > self.o.max_output then
      -- still give the credit back so the process can finish
      self:_consume(stream, #payload)
      self:_truncated()
      local room = self.o.max_output - self.sizes[stream]
      if room > 0 then
        local b = self.bufs[stream]
        b[#b + 1] = payload:sub(1, room)
        self.sizes[stream] = self.o.max_output
      end
      return
    end
    self:_output(stream, payload)
  elseif t == P.EXEC_STARTED then
    local m = core.cbor_decode(payload)
    if type(m) == "table" then
      self.pid = math.tointeger(m.pid)
      self.stdin_credit = self.stdin_credit + (math.tointeger(m.stdin_credit) or 0)
    end
    wake(self, "stdin")
  elseif t == P.EXEC_STDIN_CREDIT then
    local m = core.cbor_decode(payload)
    local n = type(m) == "table" and math.tointeger(m.bytes)
    if n and n > 0 then
      self.stdin_credit = self.stdin_credit + n
      wake(self, "stdin")
    end
  elseif t == P.EXEC_EXIT then
    local m = core.cbor_decode(payload)
    if type(m) ~= "table" or math.type(m.code) ~= "integer" then
      return self:_finish(nil, "malformed exit message from the guest")
    end
    self.exit = { code = m.code, signal = m.signal, timed_out = m.timed_out == true }
    self.exited = true
    wake(self, "stdout") wake(self, "stderr") wake(self, "stdin") wake(self, "cb")
    if self.o.stdout ~= "callback" and self.o.stderr ~= "callback" then self:_finish() end
  elseif t == P.ERROR then
    local m = core.cbor_decode(payload)
    local code = type(m) == "table" and m.code or "error"
    local msg = type(m) == "table" and m.message or "guest error"
    if code == "exec_failed" or not self.pid then
      self:_finish(nil, ("%s: %s"):format(code, msg))
    else
      io.stderr:write(("gondolin: exec %d: guest reported %s: %s\n"):format(self.id, code, msg))
    end
  end
end

-- Callback mode: deliver chunks in order; credit returns after each callback.
function Proc:_pump()
  while true do
    local item = table.remove(self.cbq, 1)
    if item then
      local stream, data = item[1], item[2]
      local cb = self.o["on_" .. stream]
      local ok, err = pcall(cb, data)
      if not ok then io.stderr:write("gondolin: on_", stream, " callback failed: ", tostring(err), "\n") end
      self:_consume(stream, #data)
    elseif self.exited or self.failed then
      break
    else
      local ev = sched.event()
      self.readable.cb = ev
      sched.wait(ev)
    end
  end
  self:_finish()
end

function Proc:_finish(_, err)
  if self.done.fired then return end
  if self.backstop then self.backstop:close() self.backstop = nil end
  self.vm:_forget(self.id)
  if err or not self.exit then
    self.failed = true
    self.err = err or "process ended without an exit status"
    wake(self, "stdout") wake(self, "stderr") wake(self, "stdin") wake(self, "cb")
    sched.fire(self.done, nil, self.err)
    return
  end
  local r = {
    code = self.exit.code, signal = self.exit.signal, timed_out = self.exit.timed_out,
    ok = self.exit.code == 0 and not self.exit.signal, pid = self.pid, truncated = self.truncated,
  }
  r.signal_name = r.signal and SIGNAMES[r.signal]
  if self.mode.stdout == "buffer" then r.stdout = table.concat(self.bufs.stdout) end
  if self.mode.stderr == "buffer" then r.stderr = table.concat(self.bufs.stderr) end
  self.bufs = nil
  self.result = r
  sched.fire(self.done, r)
end

--- The VM went away: fail everything pending.
function Proc:_abort(err)
  self.exited = true
  self:_finish(nil, err)
end

local function running(self)
  if self.failed then return nil, self.err, "failed" end
  if self.exited then return nil, "process has exited", "exited" end
  return true
end

--- Write bytes to the process's stdin; waits for guest credit.
function Proc:write(data)
  if type(data) ~= "string" then check.fail("write", "expected a string, got " .. type(data)) end
  if not self.stdin_open then
    if self.stdin_closed then return nil, "stdin is closed", "closed" end
    check.fail("write", "stdin is not enabled (spawn with stdin = true or pty = true)")
  end
  local off = 1
  while off <= #data do
    local ok, err, code = running(self)
    if not ok then return nil, err, code end
    if self.stdin_credit <= 0 then
      local ev = sched.event()
      self.readable.stdin = ev
      sched.wait(ev)
    else
      local n = math.min(#data - off + 1, self.stdin_credit, P.CHUNK)
      local sent, serr, scode = self.vm:_send(P.EXEC_STDIN, self.id, data:sub(off, off + n - 1))
      if not sent then return nil, serr, scode end
      self.stdin_credit = self.stdin_credit - n
      off = off + n
    end
  end
  return true
end

--- Signal end of input (pty: the terminal's EOF character).
function Proc:close_stdin()
  if not self.stdin_open then return true end
  self.stdin_open, self.stdin_closed = false, true
  local ok, err, code = running(self)
  if not ok then return nil, err, code end
  return self.vm:_send(P.EXEC_STDIN_EOF, self.id, "")
end

--- Next chunk of a "pipe" stream, or nil at its end.
function Proc:read(stream)
  stream = stream or "stdout"
  if self.mode[stream] ~= "pipe" then
    check.fail("read", ("%s is in '%s' mode; spawn with %s = \"pipe\" to read it"):format(stream, tostring(self.mode[stream]), stream))
  end
  while true do
    local q = self.queue[stream]
    local chunk = table.remove(q, 1)
    if chunk then
      self:_consume(stream, #chunk)
      return chunk
    end
    if self.exited or self.failed then return nil end
    local ev = sched.event()
    self.readable[stream] = ev
    sched.wait(ev)
  end
end

--- Send a signal (name like "TERM"/"SIGTERM" or number) to the process group.
function Proc:kill(sig)
  sig = sig or "TERM"
  local n = sig
  if type(sig) == "string" then n = M.SIGNALS[sig:upper():gsub("^SIG", "")] end
  if math.type(n) ~= "integer" or n < 1 or n > 64 then
    check.fail("kill", ("unknown signal %s (accepted: a name like \"TERM\" or a number 1..64)"):format(tostring(sig)))
  end
  local ok, err, code = running(self)
  if not ok then return nil, err, code end
  return self.vm:_send(P.EXEC_SIGNAL, self.id, core.cbor_encode { signal = n })
end

--- Change the pty window size.
function Proc:resize(rows, cols)
  rows = check.integer("resize rows", rows, 1, 65535)
  cols = check.integer("resize cols", cols, 1, 65535)
  if not self.o.pty then check.fail("resize", "the process has no pty (spawn with pty = true)") end
  local ok, err, code = running(self)
  if not ok then return nil, err, code end
  return self.vm:_send(P.EXEC_RESIZE, self.id, core.cbor_encode { rows = rows, cols = cols })
end

--- Wait for the end; returns the result table, or nil, err.
function Proc:wait(timeout)
  return sched.wait(self.done, timeout)
end

--- Kill the process if it still runs; a second close does nothing.
function Proc:close()
  if not self.done.fired and not self.exited and not self.failed then
    self:kill("KILL")
  end
  return true
end
Proc.__close = Proc.close

function Proc:__tostring()
  return ("gondolin.process %d (%s)"):format(self.id, self.done.fired and "done" or "running")
end

return M

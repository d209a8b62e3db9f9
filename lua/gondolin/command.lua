-- command.lua - run a host program on the loop and wait for it (a waiting
-- call: it yields in a task, drives the loop in plain code).
--
-- Output is kept bounded: stdout up to opts.max_stdout (16 MiB), stderr's
-- last 64 KiB. on_line(stream, line) sees every complete line as it comes,
-- which is how image builds show progress. kill_all() stops whatever still
-- runs when the process leaves early.
local uv = require "luv"
local sched = require "gondolin.sched"

local M = {}

local STDERR_TAIL = 64 * 1024
local MAX_STDOUT = 16 * 1024 * 1024
local MAX_LINE = 64 * 1024

local running = {}   -- handle -> pid

-- Feed data to on_line one line at a time; returns the unfinished rest.
local function split_lines(rest, data, stream, on_line)
  local buf = rest .. data
  local start = 1
  while true do
    local nl = buf:find("\n", start, true)
    if not nl then break end
    on_line(stream, buf:sub(start, nl - 1))
    start = nl + 1
  end
  buf = buf:sub(start)
  if #buf > MAX_LINE then           -- a line without end: hand it over in pieces
    on_line(stream, buf)
    buf = ""
  end
  return buf
end

--- Run argv[1] with argv[2..]. opts: env (list of "K=V", the whole
-- environment; default: inherited), cwd, stdin (a string), on_line,
-- max_stdout. Returns { code, signal, stdout, stderr } or nil, err when it
-- cannot start.
function M.run(argv, opts)
  opts = opts or {}
  local max_out = opts.max_stdout or MAX_STDOUT
  local out, err = uv.new_pipe(false), uv.new_pipe(false)
  local inp = opts.stdin and uv.new_pipe(false) or nil
  local res = { stdout = {}, stdout_len = 0, stderr = "" }
  local rest = { stdout = "", stderr = "" }
  local done, left = sched.event(), 3
  local function finish()
    left = left - 1
    if left == 0 then sched.fire(done) end
  end
  local args = table.move(argv, 2, #argv, 1, {})
  local h, perr
  -- its own process group, so kill_all() reaches its children too
  h, perr = uv.spawn(argv[1], { args = args, stdio = { inp, out, err }, env = opts.env, cwd = opts.cwd,
                                detached = true },
    function(code, sig)
      res.code, res.signal = code, sig ~= 0 and sig or nil
      finish()
    end)
  if not h then
    for _, p in ipairs { out, err, inp } do p:close() end
    sched.flush()
    return nil, ("cannot start %s: %s"):format(argv[1], tostring(perr))
  end
  running[h] = h:get_pid()
  local function reader(name, pipe)
    pipe:read_start(function(_, data)
      if data then
        if name == "stdout" then
          if res.stdout_len < max_out then
            res.stdout[#res.stdout + 1] = data:sub(1, max_out - res.stdout_len)
            res.stdout_len = res.stdout_len + #data
          end
        else
          res.stderr = (res.stderr .. data):sub(-STDERR_TAIL)
        end
        if opts.on_line then rest[name] = split_lines(rest[name], data, name, opts.on_line) end
      else
        if opts.on_line and rest[name] ~= "" then opts.on_line(name, rest[name]) end
        pipe:close()
        finish()
      end
    end)
  end
  reader("stdout", out)
  reader("stderr", err)
  if inp then
    inp:write(opts.stdin)
    inp:shutdown(function() inp:close() end)
  end
  sched.wait(done)
  running[h] = nil
  h:close()
  sched.flush()
  return { code = res.code, signal = res.signal, stdout = table.concat(res.stdout), stderr = res.stderr }
end

--- Run and expect exit 0: returns stdout, or nil and an error naming the
-- program and the last line it printed on stderr.
function M.check(argv, opts)
  local r, err = M.run(argv, opts)
  if not r then return nil, err end
  if r.code ~= 0 or r.signal then
    local last = r.stderr:gsub("%s+$", ""):match("([^\n]*)$")
    return nil, ("%s failed (%s)%s"):format(argv[1],
      r.signal and "signal " .. r.signal or "exit " .. r.code, last ~= "" and ": " .. last or ""), r
  end
  return r.stdout, nil, r
end

--- SIGTERM every command still running, with its process group (process
-- exit paths; mmdebstrap cleans up after itself on SIGTERM).
function M.kill_all()
  for h, pid in pairs(running) do
    running[h] = nil
    uv.kill(-pid, "sigterm")
  end
end

return M

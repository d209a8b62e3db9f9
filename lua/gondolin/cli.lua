-- cli.lua - the `gondolin` command: run scripts, one-shot execs, a shell.
local lpeg = require "lpeg"
local uv = require "luv"
local gondolin = require "gondolin"
local sched = require "gondolin.sched"

local M = {}

local USAGE = [==[
usage: gondolin SCRIPT.lua [ARGS...]       run a Lua script that drives VMs
       gondolin exec [OPTIONS] -- CMD ...  run one command in a fresh VM
       gondolin bash [OPTIONS] [-- CMD ...] interactive shell (pty) in a fresh VM
       gondolin image build FILE.lua [--refresh] [--tag NAME[:TAG]] [--quiet]
       gondolin image list | inspect IMAGE [--verify] | rm IMAGE... | prune
       gondolin ca path | rotate           the TLS interception CA's certificate
       gondolin --help | --version

options for exec and bash:
  --image IMAGE      image to boot: base (default), minimal, NAME[:TAG], a build id or a directory
  --rootfs MODE      root disk: cow (default: changes vanish on exit), memory or readonly
  --disk-size SIZE   grow the root disk (and its filesystem) to SIZE, e.g. 8G
  --resume PATH      start from a disk checkpoint (made with vm:checkpoint in Lua)
  --memory SIZE      guest memory, e.g. 512M or 1G (default: 512M)
  --cpus N           virtual CPUs, 1..16 (default: 1)
  --accel MODE       auto, kvm or tcg (default: auto)
  --env K=V          environment variable for the command (repeatable)
  --cwd DIR          working directory in the guest
  --timeout SECONDS  kill the command after this long (exec only)
  --console          copy the guest's serial console to stderr
  --mount HOST:GUEST[:ro]  serve host directory HOST at GUEST in the guest, read-write
                     (or read-only with :ro), confined to HOST (repeatable)
  --memfs GUEST      an in-memory filesystem at GUEST, gone when the VM stops (repeatable)

network policy (deny by default: with no --allow-host nothing leaves):
  --allow-host PATTERN        host the guest may reach over HTTP: a.b, *.a.b, a.b:PORT (repeatable)
  --allow-internal HOST:PORT  let this exact host:port through the private-range block (repeatable)
  --resolve HOST=IP           resolve HOST to IP on the host side, like curl --resolve (repeatable)
  --secret NAME@HOSTS=ENVVAR[:query][:body]
                              the guest sees $NAME as a placeholder; the host sends the value of
                              $ENVVAR instead, only to HOSTS (comma-separated patterns), in header
                              values, and also in the query or the body when named (repeatable)
  --audit FILE                append one JSON line per network decision to FILE
  --upstream-ca FILE          also trust the CA certificates in FILE (PEM) when the host
                              connects to HTTPS servers, besides the system bundle (repeatable)
]==]

local function die(msg)
  io.stderr:write("gondolin: ", msg, "\n")
  return 2
end

-- "--name=value" or "--name"
local flag_pat = lpeg.P "--" * lpeg.C((lpeg.P(1) - "=") ^ 1) * ("=" * lpeg.C(lpeg.P(1) ^ 0)) ^ -1 * -1

local VALUE_FLAGS = { image = true, memory = true, cpus = true, accel = true, env = true,
                      cwd = true, timeout = true, ["allow-host"] = true, ["allow-internal"] = true,
                      resolve = true, secret = true, audit = true, rootfs = true, ["disk-size"] = true,
                      resume = true, ["upstream-ca"] = true, mount = true, memfs = true }
local LIST_FLAGS = { env = true, ["allow-host"] = true, ["allow-internal"] = true,
                     resolve = true, secret = true, ["upstream-ca"] = true, mount = true, memfs = true }

-- --secret NAME@HOST[,HOST...]=ENVVAR[:query][:body]
local ident = (lpeg.R("az", "AZ") + "_") * (lpeg.R("az", "AZ", "09") + "_") ^ 0
local host_list = lpeg.Ct(lpeg.C((lpeg.P(1) - lpeg.S ",=") ^ 1) * ("," * lpeg.C((lpeg.P(1) - lpeg.S ",=") ^ 1)) ^ 0)
local opt_in = lpeg.Cf(lpeg.Ct "" * (":" * lpeg.Cg(lpeg.C(lpeg.P "query" + "body") * lpeg.Cc(true))) ^ 0, rawset)
local secret_pat = lpeg.C(ident) * "@" * host_list * "=" * lpeg.C(ident) * opt_in * -1
-- --resolve HOST=IP
local resolve_pat = lpeg.C((lpeg.P(1) - "=") ^ 1) * "=" * lpeg.C(lpeg.P(1) ^ 1) * -1
-- --mount HOST:GUEST[:ro|:rw]; GUEST is absolute, so HOST ends at ":/"
local mount_pat = lpeg.C((lpeg.P(1) - ":/") ^ 1) * ":" * lpeg.C("/" * (lpeg.P(1) - ":") ^ 0) *
  (":" * lpeg.C(lpeg.P "ro" + "rw")) ^ -1 * -1
local BOOL_FLAGS = { console = true }

local function flag_list()
  local l = {}
  for k in pairs(VALUE_FLAGS) do l[#l + 1] = "--" .. k end
  for k in pairs(BOOL_FLAGS) do l[#l + 1] = "--" .. k end
  table.sort(l)
  return table.concat(l, ", ")
end

--- Parse `[OPTIONS] [-- CMD...]`; returns opts, cmd (list) or nil, err.
function M.parse(args, first)
  local opts, cmd, lists = {}, {}, {}
  local i = first
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, 1, cmd)
      break
    end
    local name, value = flag_pat:match(a)
    if not name then
      if a:sub(1, 1) == "-" then return nil, ("unknown option '%s' (valid: %s)"):format(a, flag_list()) end
      table.move(args, i, #args, 1, cmd)   -- a command without "--"
      break
    end
    if VALUE_FLAGS[name] then
      if not value then
        i = i + 1
        value = args[i]
        if value == nil then return nil, ("option --%s needs a value"):format(name) end
      end
      if name == "env" and not require("gondolin.check").env_pattern:match(value) then
        return nil, ("--env expects NAME=value, got '%s'"):format(value)
      elseif name == "secret" and not secret_pat:match(value) then
        return nil, ("--secret expects NAME@HOST[,HOST...]=ENVVAR[:query][:body], got '%s'"):format(value)
      elseif name == "resolve" and not resolve_pat:match(value) then
        return nil, ("--resolve expects HOST=IP, got '%s'"):format(value)
      elseif name == "mount" and not mount_pat:match(value) then
        return nil, ("--mount expects HOST:GUEST or HOST:GUEST:ro (GUEST absolute), got '%s'"):format(value)
      end
      if LIST_FLAGS[name] then
        lists[name] = lists[name] or {}
        table.insert(lists[name], value)
      elseif name == "cpus" or name == "timeout" then
        local n = tonumber(value)
        if not n then return nil, ("--%s expects a number, got '%s'"):format(name, value) end
        opts[name] = n
      else
        opts[name] = value
      end
    elseif BOOL_FLAGS[name] and not value then
      opts[name] = true
    else
      return nil, ("unknown option '%s' (valid: %s)"):format(a, flag_list())
    end
    i = i + 1
  end
  for name in pairs(LIST_FLAGS) do opts[name] = lists[name] or {} end
  return opts, cmd
end

-- The policy the network flags describe (deny by default).
local function cli_policy(opts)
  local p = { allow = opts["allow-host"], allow_internal = opts["allow-internal"], resolve = {},
              secrets = {}, audit = opts.audit, upstream_ca = opts["upstream-ca"] }
  for _, r in ipairs(opts.resolve) do
    local host, ip = resolve_pat:match(r)
    p.resolve[host] = ip
  end
  for _, s in ipairs(opts.secret) do
    local name, hosts, var, opt = secret_pat:match(s)
    local value = os.getenv(var)
    if not value then
      error(("gondolin: --secret %s: environment variable %s is not set"):format(name, var), 0)
    end
    p.secrets[name] = { hosts = hosts, value = value, query = opt.query, body = opt.body }
  end
  return gondolin.policy(p)
end

-- The mounts --mount and --memfs describe; nil when there are none.
local function cli_mounts(opts)
  local vfs, mounts, any = require "gondolin.vfs", {}, false
  local function add(guest, p, flag)
    if mounts[guest] then error(("gondolin: %s: %s is mounted twice"):format(flag, guest), 0) end
    mounts[guest], any = p, true
  end
  for _, m in ipairs(opts.mount) do
    local host, guest, mode = mount_pat:match(m)
    local p = vfs.realfs(host)
    add(guest, mode == "ro" and vfs.readonly(p) or p, "--mount " .. m)
  end
  for _, guest in ipairs(opts.memfs) do add(guest, vfs.memory(), "--memfs " .. guest) end
  return any and mounts or nil
end

local function vm_options(opts)
  return { image = opts.image, memory = opts.memory, cpus = opts.cpus, accel = opts.accel,
           console = opts.console and "stderr" or nil, policy = cli_policy(opts),
           rootfs = opts.rootfs, disk_size = opts["disk-size"], checkpoint = opts.resume,
           mounts = cli_mounts(opts) }
end

local function exit_status(r)
  if r.signal then return 128 + r.signal end
  return r.code
end

-- Copy host stdin into p until EOF; reading pauses while a write waits
-- for guest credit, so a fast producer cannot grow our memory. Pipes,
-- sockets and terminals are read on the loop; files and devices (which epoll
-- cannot watch) with asynchronous fs reads. Returns a stop function.
local function forward_stdin(p, h)
  local kind = uv.guess_handle(0)
  if not h and kind ~= "tty" and kind ~= "pipe" and kind ~= "tcp" then
    local stopped = false
    sched.spawn(function()
      while not stopped do
        local ev = sched.event()
        uv.fs_read(0, 65536, -1, function(_, data) sched.fire(ev, data) end)
        local data = sched.wait(ev)
        if stopped then return end
        if not data or #data == 0 then break end
        if not p:write(data) then return end
      end
      p:close_stdin()
    end)
    return function() stopped = true end
  end
  if not h then
    if kind == "tty" then
      h = uv.new_tty(0, true)
    else
      h = uv.new_pipe(false)
      h:open(0)
    end
  end
  local on_read
  on_read = function(_, data)
    h:read_stop()
    sched.spawn(function()
      if data then
        p:write(data)
        if not h:is_closing() then h:read_start(on_read) end
      else
        p:close_stdin()
      end
    end)
  end
  h:read_start(on_read)
  return function() if not h:is_closing() then h:close() end end
end

local function run_exec(args)
  local opts, cmd = M.parse(args, 2)
  if not opts then return die(cmd) end
  if #cmd == 0 then return die("exec needs a command: gondolin exec [OPTIONS] -- CMD ...") end
  local piped = uv.guess_handle(0) ~= "tty"
  return sched.run(function()
    local vm <close> = gondolin.vm(vm_options(opts))
    local p = vm:spawn(cmd, {
      env = opts.env, cwd = opts.cwd, timeout = opts.timeout, stdin = piped or nil,
      on_stdout = function(s) io.stdout:write(s) io.stdout:flush() end,
      on_stderr = function(s) io.stderr:write(s) io.stderr:flush() end,
    })
    local stop_input = piped and forward_stdin(p)
    local r, err = p:wait()
    if stop_input then stop_input() end
    if not r then
      io.stderr:write("gondolin: ", err, "\n")
      return 1
    end
    if r.timed_out then io.stderr:write("gondolin: command timed out\n") end
    return exit_status(r)
  end)
end

local function run_bash(args)
  local opts, cmd = M.parse(args, 2)
  if not opts then return die(cmd) end
  if opts.timeout then return die("--timeout is for exec, not bash") end
  local stdin_tty = uv.guess_handle(0) == "tty"
  return sched.run(function()
    local vm <close> = gondolin.vm(vm_options(opts))
    if #cmd == 0 then
      local has_bash = vm:exec("command -v bash >/dev/null")
      cmd = (has_bash and has_bash.code == 0) and { "bash", "-l" } or { "/bin/sh", "-l" }
    end
    local rows, cols = 24, 80
    local tty
    if stdin_tty then
      tty = uv.new_tty(0, true)
      local w, h = tty:get_winsize()
      if w and w > 0 then rows, cols = h, w end
    end
    local env = { "TERM=" .. (os.getenv "TERM" or "xterm-256color") }
    for _, e in ipairs(opts.env) do env[#env + 1] = e end
    local p = vm:spawn(cmd, { pty = true, rows = rows, cols = cols, env = env, cwd = opts.cwd,
                              on_stdout = function(s) io.stdout:write(s) io.stdout:flush() end })
    local winch
    if tty then
      tty:set_mode(1)     -- raw: Ctrl-C is a byte for the guest's terminal
      winch = uv.new_signal()
      winch:start("sigwinch", function()
        local w, h = tty:get_winsize()
        if w and w > 0 then p:resize(h, w) end
      end)
    end
    local stop_input = forward_stdin(p, tty)
    local ok, r, err = pcall(p.wait, p)
    if winch then winch:close() end
    if tty then uv.tty_reset_mode() end
    stop_input()
    if not ok then error(r, 0) end
    if not r then
      io.stderr:write("gondolin: ", err, "\n")
      return 1
    end
    return exit_status(r)
  end)
end

-- gondolin ca path|rotate
local function run_ca(args)
  local ca = require "gondolin.ca"
  local sub = args[2]
  if #args ~= 2 or (sub ~= "path" and sub ~= "rotate") then
    return die("usage: gondolin ca path | rotate")
  end
  local path, err
  if sub == "path" then
    local ok
    ok, err = ca.open()
    path = ok and ca.path()
  else
    path, err = ca.rotate()
  end
  if not path then return die((err:gsub("^gondolin: ", ""))) end
  print(path)
  if sub == "rotate" then
    io.stderr:write("gondolin: new CA made; running VMs keep the old one until they restart\n")
  end
  return 0
end

-- Leaving early: kill our VMs and host commands, remove scratch files.
local function exit_cleanup()
  require("gondolin.vm").kill_all()
  require("gondolin.command").kill_all()
  require("gondolin.files").run_exit_cleanups()
end

local function run_script(args)
  local path = args[1]
  local chunk, err = loadfile(path)
  if not chunk then return die(err) end
  local script_arg = { [0] = path }
  for i = 2, #args do script_arg[i - 1] = args[i] end
  script_arg[-1] = args[-1]
  _G.arg = script_arg
  local real_exit = os.exit
  -- os.exit from a script kills its VMs first. Closing the Lua state instead
  -- would run luv's teardown under live handles, which crashes.
  os.exit = function(code, _)
    exit_cleanup()
    return real_exit(code)
  end
  local ok, res = pcall(sched.run, chunk, table.unpack(script_arg, 1, #script_arg))
  exit_cleanup()
  if not ok then
    res = tostring(res)
    io.stderr:write(res:match("^gondolin: ") and "" or "gondolin: ", res, "\n")
    return 1
  end
  return math.type(res) == "integer" and res or 0
end

-- Ctrl-C or a termination request: kill our VMs, restore the terminal, exit
-- with the conventional 128 + signal status.
local function on_signals()
  for name, num in pairs { sigint = 2, sigterm = 15, sighup = 1 } do
    local h = uv.new_signal()
    h:start(name, function()
      exit_cleanup()
      uv.tty_reset_mode()
      os.exit(128 + num)
    end)
    h:unref()   -- never keeps the loop alive by itself
  end
end

--- Entry point: returns the process exit status.
function M.main(args)
  args = args or {}
  on_signals()
  local cmd = args[1]
  if cmd == nil or cmd == "--help" or cmd == "-h" or cmd == "help" then
    io.stdout:write(USAGE)
    return cmd == nil and 2 or 0
  elseif cmd == "--version" then
    io.stdout:write(gondolin._VERSION, "\n")
    return 0
  end
  local ok, res = pcall(function()
    if cmd == "exec" then return run_exec(args) end
    if cmd == "image" then return require("gondolin.image.cli").main(args) end
    if cmd == "ca" then return run_ca(args) end
    if cmd == "bash" then return run_bash(args) end
    if cmd:sub(1, 1) == "-" then
      return die(("unknown option '%s' (valid: --help, --version; or a command: exec, bash, image, ca, SCRIPT.lua)"):format(cmd))
    end
    return run_script(args)
  end)
  if not ok then
    uv.tty_reset_mode()
    res = tostring(res)
    -- our own errors (bad flags, bad policy, boot failure) are one line,
    -- without the position or traceback the raise added
    res = res:gsub("\nstack traceback:.*$", "")
    res = res:match("^.-(gondolin: .*)$") or "gondolin: " .. res
    io.stderr:write(res, "\n")
    return 1
  end
  return res
end

return M

-- Shared helpers for specs.
local uv = require "luv"

local M = {}

--- Resident set size of this process in KiB.
function M.rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

--- Is a process with this pid alive (and not a zombie)?
function M.alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- sha256 of a string, by the host's sha256sum.
function M.sha256(data)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(data)
  f:close()
  local p = io.popen("sha256sum " .. tmp)
  local out = p:read("a")
  p:close()
  os.remove(tmp)
  return out:match("^(%x+)")
end

--- Seconds since some fixed point.
function M.now() return uv.hrtime() / 1e9 end

--- Run a shell command; return exit status and stdout.
function M.sh(cmd)
  local p = io.popen(cmd .. "; echo \"__rc=$?\"")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return rc, (out:gsub("__rc=%d+%s*$", ""))
end

--- Run argv as a child while the loop keeps running (servers in this
-- process keep serving); returns exit code, stdout, stderr.
function M.run(argv, env)
  local sched = require "gondolin.sched"
  local out, err = uv.new_pipe(false), uv.new_pipe(false)
  local chunks = { out = {}, err = {} }
  local done, left = sched.event(), 3
  local code
  local function finish() left = left - 1 if left == 0 then sched.fire(done) end end
  local args = {}
  for i = 2, #argv do args[#args + 1] = argv[i] end
  local child_env
  if env then
    child_env = {}
    for k, v in pairs(env) do child_env[#child_env + 1] = k .. "=" .. v end
    for _, k in ipairs { "PATH", "HOME", "XDG_CACHE_HOME", "LUA_PATH", "LUA_CPATH", "GONDOLIN_CPATH" } do
      if os.getenv(k) and not env[k] then child_env[#child_env + 1] = k .. "=" .. os.getenv(k) end
    end
  end
  local h = uv.spawn(argv[1], { args = args, stdio = { nil, out, err }, env = child_env },
    function(c) code = c finish() end)
  assert(h, "cannot start " .. argv[1])
  for name, pipe in pairs { out = out, err = err } do
    pipe:read_start(function(_, data)
      if data then chunks[name][#chunks[name] + 1] = data
      else pipe:close() finish() end
    end)
  end
  sched.wait(done, 120)
  h:close()
  sched.flush()
  return code, table.concat(chunks.out), table.concat(chunks.err)
end

--- A shell command line running bin/gondolin with `args` (a string).
-- Under `make asan` the module needs the ASan runtime preloaded, which
-- the spec process keeps from its other children.
function M.gondolin_cmd(args)
  local rt = os.getenv "GONDOLIN_ASAN_RUNTIME"
  return (rt and "LD_PRELOAD=" .. rt .. " " or "") .. "lua5.4 bin/gondolin " .. args
end

--- Write a whole file.
function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

--- Read a whole file.
function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- The first audit event whose fields equal those of `want`.
function M.find_event(events, want)
  for _, ev in ipairs(events) do
    local ok = true
    for k, v in pairs(want) do if ev[k] ~= v then ok = false break end end
    if ok then return ev end
  end
end

--- Drive luv's loop until pred() holds or `seconds` pass; returns pred().
function M.until_(pred, seconds)
  local expired = false
  local t = uv.new_timer()
  t:start(seconds * 1000, 0, function() expired = true end)
  while not pred() and not expired do uv.run("once") end
  t:close()
  uv.run("nowait")
  return pred()
end

--- A fresh temporary directory (the caller removes it).
function M.tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(uv.fs_mkdir(d, tonumber("700", 8)))
  return d
end

--- Standard base64 with padding.
function M.base64(s)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local q = {}
    for k = 1, 4 do q[k] = abc:sub(((n >> (6 * (4 - k))) & 63) + 1, ((n >> (6 * (4 - k))) & 63) + 1) end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

return M

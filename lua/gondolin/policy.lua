-- policy.lua - gondolin.policy{...}: what a VM's HTTP traffic may do.
--
-- The table is validated here (errors name the option and what is
-- accepted) and compiled once into a C object (core.policy_compile, see
-- csrc/api/l_hook.c and csrc/policy/policy.c) that the network interface
-- decides with; a policy may be shared by any number of VMs.
--
-- Hooks: C calls the runner below with the flow paused; the runner starts
-- the user's hook in a task (gondolin.sched), so the hook may wait
-- (gondolin.sleep, vm:exec, req:body()). Whatever the hook does ends in
-- exactly one call:forward / call:respond / call:response / call:fail,
-- and the flow continues from the loop. A hook that raises fails the
-- request closed (502); the error is printed and recorded in the audit
-- event. With no hooks, no Lua runs per request.
--
-- Audit: every request decision reaches on_event(ev) and/or a JSON-lines
-- file (audit = "path"), with the VM id and time added by vm.lua.
local uv = require "luv"
local core = require "gondolin.core"
local sched = require "gondolin.sched"
local check = require "gondolin.check"
local budget = require "gondolin.budget"

local M = {}

local OPTIONS = { "allow", "allow_internal", "resolve", "secrets", "on_request",
                  "on_response", "on_event", "audit", "upstream_ca", "hook_budget", "on_violation" }
local SECRET_OPTIONS = { "hosts", "value", "query", "body", "on_violation" }
local VIOLATION_ACTIONS = { "block", "terminate" }
local MAX_LIST = 4096
local DENY_BODY = "403 Forbidden: denied by policy\n"

local REASONS = {
  [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [410] = "Gone",
  [429] = "Too Many Requests", [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

------------------------------------------------------------------ JSON lines

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function json(v)
  local t = type(v)
  if t == "string" then return json_string(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or ("%.6f"):format(v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "table" then
    if #v > 0 or next(v) == nil then
      local out = {}
      for i = 1, #v do out[i] = json(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local out = {}
    for i, k in ipairs(keys) do out[i] = json_string(k) .. ":" .. json(v[k]) end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return "null"
end
M.json = json

------------------------------------------------------------------ headers

-- A case-insensitive, multi-valued, ordered list of fields.
-- h:get(name) first value | h:get_all(name) list | h:set(name, v) (v: string,
-- list, or nil to remove) | h:add(name, v) | h:remove(name) | h:each() |
-- h:list(); h["Name"] reads the first value, h["Name"] = v sets.
local Headers = {}

local function lower(s) return (tostring(s):lower()) end

function Headers.new(list)
  local h = setmetatable({}, Headers)
  local l = {}
  for i, p in ipairs(list or {}) do l[i] = { p[1], p[2] } end
  rawset(h, "_l", l)
  return h
end

function Headers:get(name)
  local n = lower(name)
  for _, p in ipairs(self._l) do if p[1]:lower() == n then return p[2] end end
  return nil
end

function Headers:get_all(name)
  local n, out = lower(name), {}
  for _, p in ipairs(self._l) do if p[1]:lower() == n then out[#out + 1] = p[2] end end
  return out
end

function Headers:remove(name)
  local n, keep = lower(name), {}
  for _, p in ipairs(self._l) do if p[1]:lower() ~= n then keep[#keep + 1] = p end end
  rawset(self, "_l", keep)
end

function Headers:add(name, value)
  if type(name) ~= "string" then error("header name must be a string", 2) end
  if type(value) ~= "string" and type(value) ~= "number" then
    error(("header '%s': value must be a string"):format(name), 2)
  end
  self._l[#self._l + 1] = { name, tostring(value) }
end

function Headers:set(name, value)
  local n = lower(name)
  local pos
  for i, p in ipairs(self._l) do if p[1]:lower() == n then pos = pos or i end end
  self:remove(name)
  if value == nil then return end
  local values = type(value) == "table" and value or { value }
  local l = self._l
  pos = pos or #l + 1
  for i, v in ipairs(values) do
    if type(v) ~= "string" and type(v) ~= "number" then
      error(("header '%s': value must be a string"):format(name), 2)
    end
    table.insert(l, pos + i - 1, { name, tostring(v) })
  end
end

function Headers:each()
  local i, l = 0, self._l
  return function()
    i = i + 1
    if l[i] then return l[i][1], l[i][2] end
  end
end

function Headers:list()
  local out = {}
  for i, p in ipairs(self._l) do out[i] = { p[1], p[2] } end
  return out
end

Headers.__index = function(h, k)
  local m = Headers[k]
  if m ~= nil then return m end
  return Headers.get(h, k)
end
Headers.__newindex = function(h, k, v) Headers.set(h, k, v) end
Headers.__len = function(h) return #h._l end
Headers.__name = "gondolin.headers"

--- Normalise a headers argument: a Headers, a list of {name, value}, or a map.
local function header_list(v, what)
  if v == nil then return {} end
  if getmetatable(v) == Headers then return v:list() end
  if type(v) ~= "table" then error(what .. ": headers must be a table", 3) end
  local out = {}
  if #v > 0 then
    for i, p in ipairs(v) do
      if type(p) ~= "table" or type(p[1]) ~= "string" or type(p[2]) ~= "string" then
        error(("%s: headers[%d] must be {name, value}"):format(what, i), 3)
      end
      out[i] = { p[1], p[2] }
    end
    return out
  end
  local names = {}
  for k in pairs(v) do names[#names + 1] = k end
  table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(names) do
    local val = v[k]
    for _, x in ipairs(type(val) == "table" and val or { val }) do
      out[#out + 1] = { tostring(k), tostring(x) }
    end
  end
  return out
end

------------------------------------------------------------------ request / response

local Request = {}
Request.__index = Request
Request.__name = "gondolin.request"

local function make_url(host, port, path, query)
  local h = host:find(":", 1, true) and "[" .. host .. "]" or host
  return ("http://%s%s%s%s"):format(h, port ~= 80 and ":" .. port or "", path,
    query and "?" .. query or "")
end

local function new_request(call, t)
  local path, query = t.target:match("^([^?]*)%??(.*)$")
  if not t.target:find("?", 1, true) then query = nil end
  local req = setmetatable({
    method = t.method, scheme = "http", host = t.host, port = t.port, path = path,
    query = query, version = t.version, headers = Headers.new(t.headers),
    websocket = t.websocket or nil,
    _call = call, _has_body = t.has_body,
  }, Request)
  req.url = make_url(req.host, req.port, req.path, req.query)
  req._url = req.url
  return req
end

--- The request body (buffered, at most 8 MiB); waits for it. nil, err on failure.
function Request:body()
  if self._body ~= nil then return self._body end
  if not self._has_body then self._body = "" return "" end
  local call = self._call
  if not call then return nil, "the request body is only readable in on_request", "closed" end
  local ev = sched.event()
  local ok, err, code = call:body(function(b, e) sched.fire(ev, b, e) end)
  if not ok then return nil, err, code end
  local b, e = sched.wait(ev)
  if b == nil then return nil, e end
  self._body = b
  return b
end

--- Replace the body sent upstream.
function Request:set_body(s)
  if type(s) ~= "string" then error("set_body: expected a string", 2) end
  self._body, self._new_body, self._body_set = s, s, true
end

--- Refuse the request: status (default 403) and a short body.
function Request:deny(status, body)
  if not self._call or self._decided then error("deny: only once, in on_request", 2) end
  status = status or 403
  self._decided = true
  return self._call:respond(true, status, { { "Content-Type", "text/plain" } },
    body or (status == 403 and DENY_BODY or ("%d %s\n"):format(status, REASONS[status] or "")))
end

--- Answer the request from the host; nothing goes upstream.
function Request:respond(status, headers, body)
  if not self._call or self._decided then error("respond: only once, in on_request", 2) end
  if body ~= nil and type(body) ~= "string" then error("respond: body must be a string", 2) end
  self._decided = true
  return self._call:respond(false, status or 200, header_list(headers, "respond"), body or "")
end

-- What goes upstream after the hook.
function Request:_export()
  local host, port, path, query = self.host, self.port, self.path, self.query
  if self.url ~= self._url then
    local auth, p = tostring(self.url):match("^[hH][tT][tT][pP]://([^/?#]+)([^#]*)$")
    if not auth then error("url must be http://host[:port]/path", 3) end
    local h, pt = auth:match("^%[(.+)%]:?(%d*)$")
    if not h then h, pt = auth:match("^([^:]+):?(%d*)$") end
    if not h then error("url has an invalid authority", 3) end
    host, port = h, tonumber(pt) or 80
    path, query = p:match("^([^?]*)%??(.*)$")
    if path == "" then path = "/" end
    if not p:find("?", 1, true) then query = nil end
  end
  if type(host) ~= "string" or host == "" then error("host must be a non-empty string", 3) end
  if math.type(port) ~= "integer" or port < 1 or port > 65535 then
    error("port must be an integer 1..65535", 3)
  end
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then error("path must start with '/'", 3) end
  if query ~= nil and type(query) ~= "string" then error("query must be a string or nil", 3) end
  return {
    method = self.method, target = path .. (query and "?" .. query or ""),
    host = host, port = port, headers = header_list(self.headers, "on_request"),
    body = self._new_body, body_set = self._body_set,
  }
end

local Response = {}
Response.__index = Response
Response.__name = "gondolin.response"

local function new_response(call, t)
  return setmetatable({
    status = t.status, reason = t.reason, headers = Headers.new(t.headers),
    _call = call, _has_body = t.has_body, _status = t.status,
  }, Response)
end

--- The response body (buffered, at most 8 MiB); waits for it.
Response.body = Request.body

--- Replace the body sent to the guest.
Response.set_body = Request.set_body

function Response:_export()
  local status = self.status
  if math.type(status) ~= "integer" or status < 200 or status > 599 then
    error("status must be an integer 200..599", 3)
  end
  local reason = self.reason
  if status ~= self._status and reason == self._reason0 then reason = REASONS[status] or "" end
  if type(reason) ~= "string" then error("reason must be a string", 3) end
  return { status = status, reason = reason, headers = header_list(self.headers, "on_response"),
           body = self._new_body, body_set = self._body_set }
end

------------------------------------------------------------------ running hooks

local function first_line(err)
  return (tostring(err):match("^[^\n]*"))
end

-- Runs in its own task, within the hook budget; ends in exactly one
-- completion call.
local function run_hook(hooks, kind, call, rq, rs)
  local name = kind == "request" and "on_request" or "on_response"
  local ok, err, exhausted = budget.run(hooks.budget, debug.traceback, function()
    if kind == "request" then
      local req = new_request(call, rq)
      hooks.on_request(req)
      if not req._decided then call:forward(req:_export()) end
    else
      local req = new_request(nil, rq)
      local res = new_response(call, rs)
      res._reason0 = res.reason
      hooks.on_response(res, req)
      call:response(res:_export())
    end
  end)
  if not ok then
    if exhausted then err = name .. " ran out of its " .. err end
    io.stderr:write("gondolin: ", name, " failed: ", tostring(err), "\n")
    call:fail(exhausted and err or first_line(err))
  end
end

local function make_runner(hooks)
  return function(kind, call, rq, rs)
    sched.spawn(run_hook, hooks, kind, call, rq, rs)
  end
end

------------------------------------------------------------------ validation

local Policy = {}
Policy.__index = Policy
Policy.__name = "gondolin.policy"

local function list_of_strings(what, v, example)
  if v == nil then return {} end
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then
    check.fail(what, ("expected a list of strings like %s, got %s"):format(example, type(v)), 2)
  end
  local out = {}
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then
      check.fail(what, ("expected a list like %s (found key '%s')"):format(example, tostring(k)), 2)
    end
  end
  if #v > MAX_LIST then check.fail(what, ("at most %d entries"):format(MAX_LIST), 2) end
  for i, s in ipairs(v) do
    if type(s) ~= "string" then
      check.fail(what, ("entry %d must be a string like %s, got %s"):format(i, example, type(s)), 2)
    end
    out[i] = s
  end
  return out
end

-- The keys of the map v, sorted; `shape` says what v must look like, and
-- bad_key(k) returns why a key is refused (nil when it is fine).
local function sorted_keys(what, v, shape, bad_key)
  if v == nil then return {} end
  if type(v) ~= "table" then check.fail(what, shape, 3) end
  local names = {}
  for k in pairs(v) do
    local why = bad_key(k)
    if why then check.fail(what, why, 3) end
    names[#names + 1] = k
  end
  table.sort(names)
  return names
end

local function validate_resolve(v)
  local what = "policy option 'resolve'"
  local names = sorted_keys(what, v, 'expected a table { ["name"] = "address" or {"address", ...} }',
    function(k)
      return type(k) ~= "string" and 'keys must be host names: { ["example.test"] = "127.0.0.1" }' or nil
    end)
  local out = {}
  for _, name in ipairs(names) do
    local addrs = list_of_strings(("%s['%s']"):format(what, name), v[name], '"127.0.0.1"')
    if #addrs == 0 then check.fail(what, ("'%s' has no address"):format(name), 2) end
    out[#out + 1] = { name, addrs }
  end
  return out
end

local function validate_secrets(v)
  local what = "policy option 'secrets'"
  local names = sorted_keys(what, v, 'expected { NAME = { hosts = {"host", ...}, value = "..." } }',
    function(k)
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and #k <= 64 then return nil end
      return ("'%s' is not a secret name (accepted: an environment variable " ..
        "name, letters, digits and _, at most 64)"):format(tostring(k))
    end)
  local out = {}
  for _, name in ipairs(names) do
    local s = v[name]
    local function w(sub) return ("policy option 'secrets.%s%s'"):format(name, sub or "") end
    if type(s) ~= "table" then check.fail(w(), "expected { hosts = {...}, value = \"...\" }", 2) end
    check.known(w(), s, SECRET_OPTIONS)
    if type(s.value) ~= "string" or #s.value < 1 or #s.value > 4096 then
      check.fail(w(".value"), "expected a string of 1..4096 bytes (the real secret)", 2)
    end
    local hosts = list_of_strings(w(".hosts"), s.hosts, '"api.example.com"')
    if #hosts == 0 then
      check.fail(w(".hosts"), "expected at least one host the secret may be sent to", 2)
    end
    for _, k in ipairs { "query", "body" } do
      if s[k] ~= nil and type(s[k]) ~= "boolean" then
        check.fail(w("." .. k), ("expected true or false (substitute in the request %s too), got %s")
          :format(k, type(s[k])), 2)
      end
    end
    local action = s.on_violation ~= nil and check.oneof(w(".on_violation"), s.on_violation, VIOLATION_ACTIONS) or nil
    out[#out + 1] = { name = name, value = s.value, hosts = hosts, query = s.query, body = s.body,
                      on_violation = action }
  end
  return out
end

local function opt_function(name, v)
  if v ~= nil and type(v) ~= "function" then
    check.fail(("policy option '%s'"):format(name), "expected a function, got " .. type(v), 2)
  end
  return v
end

--- Build a policy from options (see docs/network.md).
function M.new(opts)
  if type(opts) ~= "table" then check.fail("policy", "options must be a table") end
  check.known("policy", opts, OPTIONS)
  local hooks = {
    on_request = opt_function("on_request", opts.on_request),
    on_response = opt_function("on_response", opts.on_response),
    budget = budget.check("policy option 'hook_budget'", opts.hook_budget),
  }
  local spec = {
    allow = list_of_strings("policy option 'allow'", opts.allow,
      '"example.com", "*.example.com" or "example.com:8080"'),
    allow_internal = list_of_strings("policy option 'allow_internal'", opts.allow_internal,
      '"127.0.0.1:8080" (exact host:port)'),
    resolve = validate_resolve(opts.resolve),
    secrets = validate_secrets(opts.secrets),
    upstream_ca = list_of_strings("policy option 'upstream_ca'", opts.upstream_ca,
      '"/path/to/ca.pem" (PEM certificates trusted for upstream TLS)'),
    on_request = hooks.on_request ~= nil,
    on_response = hooks.on_response ~= nil,
  }
  if hooks.on_request or hooks.on_response then spec.runner = make_runner(hooks) end
  local on_event = opt_function("on_event", opts.on_event)
  if opts.audit ~= nil and (type(opts.audit) ~= "string" or opts.audit == "") then
    check.fail("policy option 'audit'", "expected a file name for JSON lines, got " .. type(opts.audit))
  end
  local ok, c = pcall(core.policy_compile, spec)
  if not ok then
    local field = tostring(c):match("^(%a[%w_]*)") or "allow"
    local msg = tostring(c):gsub("^" .. field .. ": ", "")
    check.fail(("policy option '%s'"):format(field), msg)
  end
  local default_action = opts.on_violation ~= nil and
    check.oneof("policy option 'on_violation'", opts.on_violation, VIOLATION_ACTIONS) or "block"
  local actions = {}
  for _, s in ipairs(spec.secrets) do actions[s.name] = s.on_violation or default_action end
  local placeholders = c:placeholders()
  local env = {}
  for _, s in ipairs(spec.secrets) do env[#env + 1] = s.name .. "=" .. placeholders[s.name] end
  return setmetatable({ _c = c, env = env, placeholders = placeholders,
                        _on_event = on_event, _audit = opts.audit, _actions = actions }, Policy)
end

--- Is v a compiled policy?
function M.is(v)
  return getmetatable(v) == Policy
end

--- What a VM does when a request tries to send secret `name` where it may
-- not go: "block" (403 and the event) or "terminate" (the VM is stopped).
function Policy:_violation_action(name)
  return self._actions[name] or "block"
end

--- Does anything listen for audit events?
function Policy:wants_events()
  return self._on_event ~= nil or self._audit ~= nil
end

-- One audit event: JSON line and/or on_event. Never raises.
function Policy:_emit(ev)
  if self._audit then
    if not self._audit_file then
      local f, err = io.open(self._audit, "a")
      if not f then
        io.stderr:write("gondolin: audit file: ", tostring(err), "\n")
        self._audit = nil
      else
        f:setvbuf("line")
        self._audit_file = f
      end
    end
    if self._audit_file then self._audit_file:write(json(ev), "\n") end
  end
  if self._on_event then
    local ok, err = pcall(self._on_event, ev)
    if not ok then io.stderr:write("gondolin: on_event failed: ", tostring(err), "\n") end
  end
end

--- Wall-clock time in seconds with microseconds (audit "time").
function M.now()
  local s, us = uv.gettimeofday()
  return s + us / 1e6
end

function Policy:__tostring()
  return ("gondolin.policy (%d secrets)"):format(#self.env)
end

M.Headers = Headers
return M

-- http_server.lua - a small HTTP/1.1 server on 127.0.0.1 for specs.
--
-- It runs on luv's loop in the spec's own process, so it serves while a
-- spec waits (vm:exec drives the loop). Keep-alive, one request at a time
-- per connection; Content-Length and chunked request bodies.
--
--   local srv = require("helpers.http_server").start()
--   srv.port; srv:close()
--   srv.requests        -- every request head: { method, path, headers = {lower = value} }
--   srv.connections     -- connections accepted so far
--
-- Routes:
--   GET  /hello                 "hello, world\n"
--   GET  /bytes/N               N bytes of a fixed pseudo-random pattern;
--                               srv:sha256(N) is their sha256
--   GET  /chunked/N             N bytes as a chunked response (1000-byte chunks)
--   GET  /close                 a short body, then the server closes
--   GET  /status/N              status N, empty body
--   ANY  /echo                  the request head and body, as text
--   ANY  /upload                "<length> <sha256>\n" of the request body
--   GET  /header/NAME/VALUE     a response with NAME: VALUE and VALUE in the body
--   GET  /ws                    websocket-style: 101, then echoes bytes back
--   GET  /files/PATH            the file srv.files .. "/" .. PATH (no "..")
--
-- With M.start{ tls = { cert = pem, key = pem } } it speaks HTTPS: each
-- connection goes through a core.tls_endpoint (mbedTLS over memory), so
-- the routes above serve the same bytes over TLS.
local uv = require "luv"

local M = {}
local Server = {}
Server.__index = Server

local BLOCK_SIZE = 1024 * 1024
local HIGH_WATER = 256 * 1024
local MAX_HEAD = 64 * 1024

-- A fixed 1 MiB pseudo-random block (xorshift), the same every run.
local block
local function get_block()
  if block then return block end
  local parts, x = {}, 2463534242
  for i = 1, BLOCK_SIZE / 4 do
    x = x ~ (x << 13) & 0xffffffff
    x = x ~ (x >> 17)
    x = x ~ (x << 5) & 0xffffffff
    parts[i] = string.pack("<I4", x)
  end
  block = table.concat(parts)
  return block
end

--- sha256 of the /bytes/N body (by the host's sha256sum).
function Server:sha256(n)
  self.sums = self.sums or {}
  if self.sums[n] then return self.sums[n] end
  local tmp = os.tmpname()
  local p = assert(io.popen("sha256sum > " .. tmp, "w"))
  local b, left = get_block(), n
  while left > 0 do
    local piece = left >= #b and b or b:sub(1, left)
    p:write(piece)
    left = left - #piece
  end
  p:close()
  local f = assert(io.open(tmp))
  local sum = f:read("a"):match("^(%x+)")
  f:close()
  os.remove(tmp)
  self.sums[n] = sum
  return sum
end

-- Write a body of n bytes from the block, with backpressure; then done().
local function send_bytes(client, n, chunked, done)
  local b, off = get_block(), 0
  local function pump()
    while n > 0 do
      local len = math.min(n, chunked and 1000 or 64 * 1024, #b - off)
      local piece = b:sub(off + 1, off + len)
      off = (off + len) % #b
      n = n - len
      if chunked then piece = ("%x\r\n%s\r\n"):format(len, piece) end
      if client:is_closing() then return end
      if client:write_queue_size() > HIGH_WATER then
        client:write(piece, function() pump() end)
        return
      end
      client:write(piece)
    end
    if chunked then client:write("0\r\n\r\n") end
    done()
  end
  pump()
end

local function parse_head(head)
  local method, path, version = head:match("^(%S+) (%S+) (HTTP/1%.%d)\r\n")
  local headers, list = {}, {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    local k = name:lower()
    list[#list + 1] = { name, value }
    headers[k] = headers[k] and headers[k] .. ", " .. value or value
  end
  return { method = method, path = path, version = version, headers = headers, list = list }
end

local function respond(client, status, headers, body, close)
  local lines = { ("HTTP/1.1 %d %s\r\n"):format(status, status == 200 and "OK" or "Status") }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h[1] .. ": " .. h[2] .. "\r\n" end
  if body then lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n" end
  if close then lines[#lines + 1] = "Connection: close\r\n" end
  lines[#lines + 1] = "\r\n"
  client:write(table.concat(lines) .. (body or ""))
end

-- One connection: read heads and bodies, answer in order.
function Server:_serve(client)
  local buf, state, req = "", "head", nil
  local body_left, body_parts, body_len, chunk_state = 0, nil, 0, nil
  local sink                 -- upload: sha256sum pipe and temp file

  local function close()
    if not client:is_closing() then client:close() end
    if sink and io.type(sink.p) == "file" then   -- a body cut short: drop its sha256sum
      sink.p:close()
      os.remove(sink.tmp)
    end
    sink = nil
  end

  local function finish_request()
    local r = req
    req, state = nil, "busy"
    local function next_request()
      if client:is_closing() then return end
      state = "head"
      self:_continue(client)
    end
    self:_route(client, r, next_request, close)
  end

  local function take_body(data)
    if sink then sink.p:write(data) else body_parts[#body_parts + 1] = data end
    body_len = body_len + #data
  end

  local function start_body()
    body_parts, body_len, sink = {}, 0, nil
    if req.path == "/upload" then
      local tmp = os.tmpname()
      sink = { tmp = tmp, p = assert(io.popen("sha256sum > " .. tmp, "w")) }
    end
    local cl = tonumber(req.headers["content-length"] or "")
    if (req.headers["transfer-encoding"] or ""):lower():find("chunked") then
      state, chunk_state = "chunked", "size"
    elseif cl and cl > 0 then
      state, body_left = "body", cl
    else
      state = "done"
    end
  end

  local function end_body()
    if sink then
      sink.p:close()
      local f = assert(io.open(sink.tmp))
      req.body_sha256 = f:read("a"):match("^(%x+)")
      f:close()
      os.remove(sink.tmp)
      req.body = ""
    else
      req.body = table.concat(body_parts)
    end
    req.body_len = body_len
    finish_request()
  end

  local function step()
    while true do
      if state == "head" then
        local e = buf:find("\r\n\r\n", 1, true)
        if not e then
          if #buf > MAX_HEAD then close() end
          return
        end
        req = parse_head(buf:sub(1, e + 1))
        buf = buf:sub(e + 4)
        self.requests[#self.requests + 1] = req
        if (req.headers["expect"] or ""):lower() == "100-continue" then
          client:write("HTTP/1.1 100 Continue\r\n\r\n")
        end
        start_body()
      elseif state == "body" then
        if #buf == 0 then return end
        local n = math.min(#buf, body_left)
        take_body(buf:sub(1, n))
        buf = buf:sub(n + 1)
        body_left = body_left - n
        if body_left == 0 then state = "done" end
      elseif state == "chunked" then
        if chunk_state == "size" then
          local e = buf:find("\r\n", 1, true)
          if not e then return end
          local size = tonumber(buf:sub(1, e - 1):match("^(%x+)"), 16)
          buf = buf:sub(e + 2)
          if not size then close() return end
          if size == 0 then chunk_state = "trailer" else chunk_state, body_left = "data", size end
        elseif chunk_state == "data" then
          if #buf == 0 then return end
          local n = math.min(#buf, body_left)
          take_body(buf:sub(1, n))
          buf = buf:sub(n + 1)
          body_left = body_left - n
          if body_left == 0 then chunk_state = "crlf" end
        elseif chunk_state == "crlf" then
          if #buf < 2 then return end
          buf = buf:sub(3)
          chunk_state = "size"
        else   -- trailer: lines until an empty one
          local e = buf:find("\r\n", 1, true)
          if not e then return end
          local line = buf:sub(1, e - 1)
          buf = buf:sub(e + 2)
          if line == "" then state = "done" end
        end
      elseif state == "done" then
        end_body()
        return
      else   -- busy: the previous response is still going out
        return
      end
    end
  end

  self._conns[client] = { step = step, feed = function(data) buf = buf .. data end }
  self._reader = function(c)
    return function(err, data)
      if err or not data then close() return end
      local conn = self._conns[c]
      conn.feed(data)
      conn.step()
    end
  end
  client:read_start(self._reader(client))
end

function Server:_continue(client)
  local conn = self._conns[client]
  if conn then conn.step() end
end

-- Answer one complete request; next() when the connection may go on.
function Server:_route(client, req, next, close)
  local path = req.path or ""
  local want_close = (req.headers["connection"] or ""):lower():find("close") ~= nil
    or req.version == "HTTP/1.0"
  local function done()
    if want_close then close() else next() end
  end
  local n
  if path == "/hello" then
    respond(client, 200, { { "Content-Type", "text/plain" } }, "hello, world\n", want_close)
    done()
  elseif path:match("^/bytes/%d+$") then
    n = tonumber(path:match("%d+"))
    respond(client, 200, { { "Content-Type", "application/octet-stream" },
                           { "Content-Length", tostring(n) } }, nil, want_close)
    send_bytes(client, n, false, done)
  elseif path:match("^/chunked/%d+$") then
    n = tonumber(path:match("%d+"))
    respond(client, 200, { { "Content-Type", "application/octet-stream" },
                           { "Transfer-Encoding", "chunked" } }, nil, want_close)
    send_bytes(client, n, true, done)
  elseif path == "/close" then
    client:write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclosing\n", function() close() end)
  elseif path:match("^/status/%d+$") then
    respond(client, tonumber(path:match("%d+")), {}, "", want_close)
    done()
  elseif path == "/echo" or path:match("^/echo%?") then
    local lines = { ("%s %s %s"):format(req.method, req.path, req.version) }
    for _, h in ipairs(req.list) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
    lines[#lines + 1] = ""
    lines[#lines + 1] = req.body or ""
    respond(client, 200, { { "Content-Type", "text/plain" } }, table.concat(lines, "\n"), want_close)
    done()
  elseif path == "/upload" then
    respond(client, 200, { { "Content-Type", "text/plain" } },
      ("%d %s\n"):format(req.body_len or 0, req.body_sha256 or ""), want_close)
    done()
  elseif path:match("^/header/[^/]+/[^/]+$") then
    local name, value = path:match("^/header/([^/]+)/([^/]+)$")
    respond(client, 200, { { name, value } }, "value=" .. value .. "\n", want_close)
    done()
  elseif path:match("^/files/") and self.files and not path:find("..", 1, true) then
    local f = io.open(self.files .. "/" .. path:sub(8):gsub("%?.*", ""), "rb")
    local data = f and f:read("a")
    if f then f:close() end
    if data then
      respond(client, 200, { { "Content-Type", "application/octet-stream" } }, data, want_close)
    else
      respond(client, 404, { { "Content-Type", "text/plain" } }, "not found\n", want_close)
    end
    done()
  elseif path == "/ws" then
    client:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" ..
      "Connection: Upgrade\r\nSec-WebSocket-Accept: test\r\n\r\n")
    self._conns[client].step = function() end
    self:_reader_ws(client)
  else
    respond(client, 404, { { "Content-Type", "text/plain" } }, "not found\n", want_close)
    done()
  end
end

-- After a 101: echo every byte back, prefixed once with "ws:".
function Server:_reader_ws(client)
  client:read_stop()
  client:write("ws:")
  client:read_start(function(err, data)
    if err or not data then
      if not client:is_closing() then client:close() end
      return
    end
    client:write(data)
  end)
end

-- A TLS server connection over a luv TCP handle, with the handle methods
-- the server uses (write, read_start/stop, is_closing, close, write_queue_size).
local function tls_wrap(raw, ep)
  local w, done, failed = {}, false, false
  local function flush(cb)
    local out = ep:output()
    if #out > 0 and not raw:is_closing() then raw:write(out, cb) elseif cb then cb() end
  end
  function w.write(_, data, cb)
    local off = 1
    while off <= #data do
      local n = ep:write(data:sub(off, off + 16383))
      if not n or n == 0 then break end
      off = off + n
      if off <= #data then flush() end
    end
    flush(cb)
  end
  function w.read_start(_, cb)
    raw:read_start(function(err, ct)
      if err or not ct then return cb(err, nil) end
      ep:feed(ct)
      if not done then
        local ok, herr = ep:handshake()
        flush()
        if ok == nil then
          failed = herr
          return cb(herr, nil)
        end
        if not ok then return end
        done = true
      end
      while true do
        local pt = ep:read()
        if pt == nil then flush() return cb(nil, nil) end
        if pt == "" then break end
        cb(nil, pt)
      end
      flush()
    end)
  end
  function w.read_stop() raw:read_stop() end
  function w.is_closing() return raw:is_closing() end
  function w.write_queue_size() return raw:write_queue_size() end
  function w.close()
    if raw:is_closing() then return end
    if done then pcall(ep.close_notify, ep) flush() end
    raw:close()
  end
  function w.handshake_error() return failed end
  return w
end

--- Start a server on 127.0.0.1 (ephemeral port); opts.tls = { cert =, key = }.
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ requests = {}, connections = 0, _conns = setmetatable({}, { __mode = "k" }) }, Server)
  local tcp = uv.new_tcp()
  assert(tcp:bind("127.0.0.1", 0))
  assert(tcp:listen(64, function(err)
    if err then return end
    local client = uv.new_tcp()
    if tcp:accept(client) then
      if opts.tls then
        local core = require "gondolin.core"
        client = tls_wrap(client, assert(core.tls_endpoint {
          role = "server", cert = opts.tls.cert, key = opts.tls.key, alpn = { "http/1.1" } }))
      end
      self.connections = self.connections + 1
      self._clients = self._clients or {}
      self._clients[#self._clients + 1] = client
      self:_serve(client)
    else
      client:close()
    end
  end))
  self.tcp = tcp
  self.port = tcp:getsockname().port
  return self
end

--- The last request whose path matches (a Lua pattern).
function Server:last(pattern)
  for i = #self.requests, 1, -1 do
    if (self.requests[i].path or ""):match(pattern) then return self.requests[i] end
  end
end

--- Stop listening and drop every connection.
function Server:close()
  if self.tcp and not self.tcp:is_closing() then self.tcp:close() end
  for _, c in ipairs(self._clients or {}) do
    if not c:is_closing() then c:close() end
  end
  -- let the closes finish: a close still pending when the Lua state goes
  -- away (busted's exit) crashes luv's loop teardown
  require("gondolin.sched").flush()
end

return M

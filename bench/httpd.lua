-- bench/httpd.lua - a minimal HTTP/1.1 server on 127.0.0.1 for benchmarks:
-- GET /bytes/N answers N bytes of a fixed pattern, with keep-alive.
-- It runs on luv's loop in the benchmark's own process.
local uv = require "luv"

local M = {}

local CHUNK = string.rep("gondolin-bench-0123456789abcdef", 2048)   -- 64 KiB

local function send_body(client, n, done)
  local function pump()
    while n > 0 do
      local piece = n >= #CHUNK and CHUNK or CHUNK:sub(1, n)
      n = n - #piece
      if client:write_queue_size() > 4 * #CHUNK then
        client:write(piece, function() pump() end)
        return
      end
      client:write(piece)
    end
    done()
  end
  pump()
end

--- Start the server; returns it and its port. server:close() stops it.
function M.start()
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  server:listen(128, function()
    local client = uv.new_tcp()
    server:accept(client)
    client:nodelay(true)   -- head and body are separate writes: no Nagle wait
    local buf, busy = "", false
    local function serve()
      if busy then return end
      local head_end = buf:find("\r\n\r\n", 1, true)
      if not head_end then return end
      local head = buf:sub(1, head_end - 1)
      buf = buf:sub(head_end + 4)
      local n = tonumber(head:match("^GET /bytes/(%d+) ")) or 0
      local close = head:lower():find("\nconnection: close", 1, true)
      busy = true
      client:write(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n%s\r\n")
        :format(n, close and "Connection: close\r\n" or ""))
      send_body(client, n, function()
        busy = false
        if close then client:shutdown(function() client:close() end) else serve() end
      end)
    end
    client:read_start(function(err, data)
      if err or not data then
        if not client:is_closing() then client:close() end
        return
      end
      buf = buf .. data
      serve()
    end)
  end)
  return server, server:getsockname().port
end

return M

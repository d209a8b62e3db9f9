-- SPDX-License-Identifier: MIT
-- frames.lua - build guest frames and decode the stack's output, for specs.
--
-- Addresses are dotted-quad strings ("192.168.127.3") and MACs are
-- "xx:xx:xx:xx:xx:xx" strings everywhere in this module's interface.
-- Builders compute correct checksums unless told otherwise (opts.checksum).
--
--   local F = require "helpers.frames"
--   local h = F.harness()                    -- a core.net that records output
--   h:send(F.guest_udp(F.GW_IP, 40000, 53, F.dns_query(1, "example.com")))
--   local p = F.parse(h.out[1])              -- p.eth, p.ip, p.udp, p.dns ...

local M = {}

M.GW_MAC = "5a:94:ef:e4:0c:dd"
M.GUEST_MAC = "02:00:00:00:00:01"
M.BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
M.GW_IP = "192.168.127.1"
M.GUEST_IP = "192.168.127.3"

M.ETH_IPV4, M.ETH_ARP, M.ETH_IPV6 = 0x0800, 0x0806, 0x86dd
M.PROTO_ICMP, M.PROTO_TCP, M.PROTO_UDP = 1, 6, 17
M.TCP = { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20 }

------------------------------------------------------------------ addresses

--- "a.b.c.d" -> integer
function M.ip(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  assert(a, "bad IPv4 address " .. tostring(s))
  return tonumber(a) << 24 | tonumber(b) << 16 | tonumber(c) << 8 | tonumber(d)
end

--- integer -> "a.b.c.d"
function M.ip_str(n)
  return string.format("%d.%d.%d.%d", n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255)
end

--- "xx:xx:..." -> 6 bytes
function M.mac(s)
  local t = {}
  for h in s:gmatch("%x%x") do t[#t + 1] = string.char(tonumber(h, 16)) end
  assert(#t == 6, "bad MAC " .. tostring(s))
  return table.concat(t)
end

--- 6 bytes -> "xx:xx:..."
function M.mac_str(b)
  return (b:gsub(".", function(c) return string.format("%02x:", c:byte()) end):sub(1, -2))
end

------------------------------------------------------------------ checksums

--- RFC 1071 checksum of a string: the value to store (0 over a valid one).
function M.csum(s)
  local sum = 0
  if #s % 2 == 1 then s = s .. "\0" end
  for i = 1, #s, 2 do sum = sum + (s:byte(i) << 8 | s:byte(i + 1)) end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return ~sum & 0xffff
end

--- TCP/UDP checksum with the IPv4 pseudo-header.
function M.csum_tcpudp(src, dst, proto, seg)
  return M.csum(string.pack(">I4I4BBI2", M.ip(src), M.ip(dst), 0, proto, #seg) .. seg)
end

------------------------------------------------------------------ builders

--- Ethernet frame. dst/src: MAC strings.
function M.eth(dst, src, ethertype, payload)
  return M.mac(dst) .. M.mac(src) .. string.pack(">I2", ethertype) .. payload
end

--- IPv4 datagram. o: src, dst, proto, payload; optional id, ttl, tos,
--- flags (default DF = 2), frag (offset in 8-byte units), options (bytes,
--- multiple of 4), and overrides: version, ihl, total_len, checksum.
function M.ipv4(o)
  local options = o.options or ""
  local ihl = o.ihl or (5 + #options // 4)
  local total = o.total_len or (20 + #options + #o.payload)
  local flags = o.flags or 2
  local function hdr(sum)
    return string.pack(">BBI2I2I2BBI2I4I4", (o.version or 4) << 4 | ihl, o.tos or 0,
      total, o.id or 1, flags << 13 | (o.frag or 0), o.ttl or 64, o.proto, sum,
      M.ip(o.src), M.ip(o.dst)) .. options
  end
  local sum = o.checksum or M.csum(hdr(0))
  return hdr(sum) .. o.payload
end

--- UDP datagram. opts.checksum: a value to put instead (0 = none).
function M.udp(src_ip, dst_ip, sport, dport, payload, opts)
  opts = opts or {}
  local len = opts.len or (8 + #payload)
  local seg = string.pack(">I2I2I2I2", sport, dport, len, 0) .. payload
  local sum = opts.checksum
  if sum == nil then
    sum = M.csum_tcpudp(src_ip, dst_ip, M.PROTO_UDP, seg)
    if sum == 0 then sum = 0xffff end
  end
  return string.pack(">I2I2I2I2", sport, dport, len, sum) .. payload
end

--- TCP segment with a correct checksum. flags: number (M.TCP bits) or a
--- string of letters "S", "A", "F", "R", "P", "U" (e.g. "SA").
function M.tcp(src_ip, dst_ip, sport, dport, seq, ack, flags, window, options, payload)
  options, payload = options or "", payload or ""
  if type(flags) == "string" then
    local bits = { S = M.TCP.SYN, A = M.TCP.ACK, F = M.TCP.FIN, R = M.TCP.RST,
                   P = M.TCP.PSH, U = M.TCP.URG }
    local f = 0
    for ch in flags:gmatch(".") do f = f | assert(bits[ch], "bad TCP flag " .. ch) end
    flags = f
  end
  assert(#options % 4 == 0, "TCP options must be padded to 4 bytes")
  local function seg(sum)
    return string.pack(">I2I2I4I4BBI2I2I2", sport, dport, seq & 0xffffffff, ack & 0xffffffff,
      (5 + #options // 4) << 4, flags, window or 65535, sum, 0) .. options .. payload
  end
  return seg(M.csum_tcpudp(src_ip, dst_ip, M.PROTO_TCP, seg(0)))
end

--- TCP option bytes: M.tcp_opts{ mss = 1460, wscale = 7, sack_ok = true, ts = {1, 0} }
function M.tcp_opts(o)
  local s = ""
  if o.mss then s = s .. string.pack(">BBI2", 2, 4, o.mss) end
  if o.sack_ok then s = s .. "\4\2" end
  if o.ts then s = s .. string.pack(">BBI4I4", 8, 10, o.ts[1], o.ts[2]) end
  if o.wscale then s = s .. string.pack(">BBB", 3, 3, o.wscale) end
  while #s % 4 ~= 0 do s = s .. "\1" end
  return s
end

--- ICMP message (echo by default: type 8). opts.checksum overrides.
function M.icmp(typ, code, id, seq, data, opts)
  local body = string.pack(">I2I2", id or 0, seq or 0) .. (data or "")
  local sum = (opts and opts.checksum) or M.csum(string.pack(">BBI2", typ, code, 0) .. body)
  return string.pack(">BBI2", typ, code, sum) .. body
end

--- ARP packet (Ethernet/IPv4). op 1 request, 2 reply.
function M.arp(op, sha, spa, tha, tpa)
  return string.pack(">I2I2BBI2", 1, 0x0800, 6, 4, op) .. M.mac(sha) ..
    string.pack(">I4", M.ip(spa)) .. M.mac(tha) .. string.pack(">I4", M.ip(tpa))
end

--- A full frame from the guest to the gateway carrying an IPv4 datagram.
--- opts: passed to M.ipv4 (src defaults to the guest, dst to the gateway).
function M.guest_ip(proto, payload, opts)
  opts = opts or {}
  local o = { src = M.GUEST_IP, dst = M.GW_IP, proto = proto, payload = payload }
  for k, v in pairs(opts) do o[k] = v end
  return M.eth(opts.eth_dst or M.GW_MAC, M.GUEST_MAC, M.ETH_IPV4, M.ipv4(o))
end

--- A UDP frame from the guest. opts: ip options (src, eth_dst...) and udp (checksum).
function M.guest_udp(dst_ip, sport, dport, payload, opts)
  opts = opts or {}
  local src = opts.src or M.GUEST_IP
  local o = { dst = dst_ip }
  for k, v in pairs(opts) do o[k] = v end
  return M.guest_ip(M.PROTO_UDP, M.udp(src, dst_ip, sport, dport, payload, opts.udp), o)
end

--- A TCP frame from the guest (arguments as M.tcp after the destination).
function M.guest_tcp(dst_ip, sport, dport, seq, ack, flags, window, options, payload)
  return M.guest_ip(M.PROTO_TCP,
    M.tcp(M.GUEST_IP, dst_ip, sport, dport, seq, ack, flags, window, options, payload),
    { dst = dst_ip })
end

------------------------------------------------------------------ DHCP and DNS

--- A client DHCP message. o: type (1 DISCOVER, 3 REQUEST, ...), xid,
--- flags, ciaddr, chaddr (MAC string), requested, server_id, extra (raw
--- option bytes), no_end (omit option 255), options (replace all options).
function M.dhcp(o)
  local chaddr = M.mac(o.chaddr or M.GUEST_MAC) .. string.rep("\0", 10)
  local fixed = string.pack(">BBBBI4I2I2I4I4I4I4", o.op or 1, 1, 6, 0, o.xid or 0x12345678, 0,
    o.flags or 0, M.ip(o.ciaddr or "0.0.0.0"), 0, 0, M.ip(o.giaddr or "0.0.0.0")) ..
    chaddr .. string.rep("\0", 192) .. string.pack(">I4", o.cookie or 0x63825363)
  local opts = o.options
  if not opts then
    opts = string.pack("BBB", 53, 1, o.type or 1)
    if o.requested then opts = opts .. string.pack(">BBI4", 50, 4, M.ip(o.requested)) end
    if o.server_id then opts = opts .. string.pack(">BBI4", 54, 4, M.ip(o.server_id)) end
    opts = opts .. (o.extra or "") .. "\55\3\1\3\6" .. (o.no_end and "" or "\255")
  end
  return fixed .. opts
end

--- Decode a DHCP message: fields plus options[code] = raw value.
function M.parse_dhcp(s)
  local d = {}
  d.op, d.htype, d.hlen, d.hops, d.xid, d.secs, d.flags, d.ciaddr, d.yiaddr, d.siaddr, d.giaddr =
    string.unpack(">BBBBI4I2I2I4I4I4I4", s)
  for _, k in ipairs { "ciaddr", "yiaddr", "siaddr", "giaddr" } do d[k] = M.ip_str(d[k]) end
  d.chaddr = M.mac_str(s:sub(29, 34))
  d.cookie = string.unpack(">I4", s, 237)
  d.options, d.order = {}, {}
  local i = 241
  while i <= #s do
    local code = s:byte(i)
    if code == 255 then break end
    if code == 0 then
      i = i + 1
    else
      local len = s:byte(i + 1)
      d.options[code] = s:sub(i + 2, i + 1 + len)
      d.order[#d.order + 1] = code
      i = i + 2 + len
    end
  end
  d.type = d.options[53] and d.options[53]:byte()
  return d
end

--- DNS name in wire format ("example.com" -> "\7example\3com\0").
function M.dns_name(name)
  local s = ""
  for label in name:gmatch("[^.]+") do s = s .. string.char(#label) .. label end
  return s .. "\0"
end

--- A DNS query. opts: flags (default RD), qdcount, ancount, qclass, raw
--- question bytes (question), extra bytes appended.
function M.dns_query(id, name, qtype, opts)
  opts = opts or {}
  local q = opts.question or (M.dns_name(name) .. string.pack(">I2I2", qtype or 1, opts.qclass or 1))
  return string.pack(">I2I2I2I2I2I2", id, opts.flags or 0x0100, opts.qdcount or 1,
    opts.ancount or 0, 0, opts.arcount or 0) .. q .. (opts.extra or "")
end

--- Decode a DNS reply: header fields, question bytes, answers (A only decoded).
function M.parse_dns(s)
  local d = {}
  d.id, d.flags, d.qdcount, d.ancount, d.nscount, d.arcount = string.unpack(">I2I2I2I2I2I2", s)
  d.rcode = d.flags & 0xf
  local i = 13
  while s:byte(i) ~= 0 do i = i + 1 + s:byte(i) end
  d.question = s:sub(13, i + 4)
  i = i + 5
  d.answers = {}
  for _ = 1, d.ancount do
    local ptr, typ, class, ttl, rdlen = string.unpack(">I2I2I2I4I2", s, i)
    local rdata = s:sub(i + 12, i + 11 + rdlen)
    local a = { ptr = ptr, type = typ, class = class, ttl = ttl, rdata = rdata }
    if typ == 1 and rdlen == 4 then a.ip = M.ip_str(string.unpack(">I4", rdata)) end
    d.answers[#d.answers + 1] = a
    i = i + 12 + rdlen
  end
  return d
end

------------------------------------------------------------------ parsing output

local function parse_tcp_options(s)
  local o, i = {}, 1
  while i <= #s do
    local kind = s:byte(i)
    if kind == 0 then break end
    if kind == 1 then
      i = i + 1
    else
      local len = s:byte(i + 1)
      if not len or len < 2 then break end
      local v = s:sub(i + 2, i + len - 1)
      if kind == 2 then o.mss = string.unpack(">I2", v)
      elseif kind == 3 then o.wscale = v:byte()
      elseif kind == 4 then o.sack_ok = true
      elseif kind == 8 then o.ts = { string.unpack(">I4I4", v) } end
      i = i + len
    end
  end
  return o
end

local function parse_l4(p, ip, body)
  if ip.proto == M.PROTO_UDP then
    local u = {}
    u.sport, u.dport, u.len, u.checksum = string.unpack(">I2I2I2I2", body)
    u.payload = body:sub(9, u.len)
    u.csum_ok = u.checksum == 0 or M.csum_tcpudp(ip.src, ip.dst, M.PROTO_UDP, body:sub(1, u.len)) == 0
    p.udp = u
    if u.sport == 67 then p.dhcp = M.parse_dhcp(u.payload) end
    if u.sport == 53 then p.dns = M.parse_dns(u.payload) end
  elseif ip.proto == M.PROTO_TCP then
    local t = {}
    local off
    t.sport, t.dport, t.seq, t.ack, off, t.flags, t.window, t.checksum, t.urg =
      string.unpack(">I2I2I4I4BBI2I2I2", body)
    t.hlen = (off >> 4) * 4
    t.options = parse_tcp_options(body:sub(21, t.hlen))
    t.payload = body:sub(t.hlen + 1)
    t.csum_ok = M.csum_tcpudp(ip.src, ip.dst, M.PROTO_TCP, body) == 0
    -- flag booleans: syn, fin, rst, psh, urg and ack_flag (t.ack is the number)
    for name, bit in pairs(M.TCP) do
      t[name == "ACK" and "ack_flag" or name:lower()] = t.flags & bit ~= 0
    end
    p.tcp = t
  elseif ip.proto == M.PROTO_ICMP then
    local c = {}
    c.type, c.code, c.checksum, c.id, c.seq = string.unpack(">BBI2I2I2", body)
    c.data = body:sub(9)
    c.csum_ok = M.csum(body) == 0
    p.icmp = c
  end
end

--- Decode an output frame: { eth=, arp= | ip= and udp=/tcp=/icmp= (and
--- dhcp=/dns= for replies from ports 67/53) }. Addresses come back as
--- strings; csum_ok fields say whether each checksum verifies. tcp has
--- seq, ack (numbers), flags (number) and booleans syn, fin, rst, psh, urg,
--- ack_flag; options = { mss=, wscale=, sack_ok=, ts= }.
function M.parse(frame)
  local p = { raw = frame }
  p.eth = { dst = M.mac_str(frame:sub(1, 6)), src = M.mac_str(frame:sub(7, 12)),
            type = string.unpack(">I2", frame, 13) }
  local body = frame:sub(15)
  if p.eth.type == M.ETH_ARP then
    local a = {}
    a.htype, a.ptype, a.hlen, a.plen, a.op = string.unpack(">I2I2BBI2", body)
    a.sha, a.spa = M.mac_str(body:sub(9, 14)), M.ip_str(string.unpack(">I4", body, 15))
    a.tha, a.tpa = M.mac_str(body:sub(19, 24)), M.ip_str(string.unpack(">I4", body, 25))
    p.arp = a
  elseif p.eth.type == M.ETH_IPV4 then
    local ip = {}
    local vihl, frag
    vihl, ip.tos, ip.len, ip.id, frag, ip.ttl, ip.proto, ip.checksum, ip.src, ip.dst =
      string.unpack(">BBI2I2I2BBI2I4I4", body)
    ip.version, ip.ihl = vihl >> 4, vihl & 15
    ip.df, ip.mf, ip.frag = frag & 0x4000 ~= 0, frag & 0x2000 ~= 0, frag & 0x1fff
    ip.src, ip.dst = M.ip_str(ip.src), M.ip_str(ip.dst)
    ip.csum_ok = M.csum(body:sub(1, ip.ihl * 4)) == 0
    p.ip = ip
    parse_l4(p, ip, body:sub(ip.ihl * 4 + 1, ip.len))
  end
  return p
end

------------------------------------------------------------------ harness

local Harness = {}
Harness.__index = Harness

--- Feed one frame; returns the verdict ("handled", "ignored", "malformed").
function Harness:send(frame, now)
  return self.net:input(frame, now)
end

--- Output frames since the last call (decoded), and clear the list.
function Harness:take()
  local t = {}
  for i, f in ipairs(self.out) do t[i] = M.parse(f) end
  self.out = {}
  return t
end

--- Feed a frame and return the decoded output it caused.
function Harness:exchange(frame, now)
  self:take()
  self:send(frame, now)
  return self:take()
end

--- A core.net recording its output in h.out and TCP events in h.events
--- ({conn, name}). opts: core.net options; on_accept defaults to accepting.
function M.harness(opts)
  local core = require "gondolin.core"
  local h = setmetatable({ out = {}, events = {}, conns = {} }, Harness)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local user_event, user_accept = o.on_event, o.on_accept
  o.on_output = function(f) h.out[#h.out + 1] = f end
  o.on_accept = function(conn)
    h.conns[#h.conns + 1] = conn
    if user_accept then return user_accept(conn) end
    return true
  end
  o.on_event = function(conn, ev)
    h.events[#h.events + 1] = { conn, ev }
    if user_event then user_event(conn, ev) end
  end
  h.net = core.net(o)
  return h
end

return M

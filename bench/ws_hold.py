#!/usr/bin/env python3
"""Open N idle chat WebSockets to a c10k-lab server, keep reading them, and
print the server's /stats once every join has been seen. Standard library
only; a stopgap until chatbench (issue 5) does this properly.

usage: ws_hold.py PORT N [HOLD_SECONDS]
"""
import base64, json, os, re, select, socket, sys, time, urllib.request

port, n = int(sys.argv[1]), int(sys.argv[2])
hold = float(sys.argv[3]) if len(sys.argv) > 3 else 0
base = 'http://127.0.0.1:%d' % port

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None

try:
    urllib.request.build_opener(NoRedirect).open(
        urllib.request.Request(base + '/login', data=b'username=coco&password=123456'))
    sys.exit('login did not redirect')
except urllib.error.HTTPError as e:
    cookie = re.search(r'session=[^;]+', e.headers['Set-Cookie']).group(0)

def stats():
    return json.load(urllib.request.urlopen(base + '/stats'))

def drain(timeout):
    """Read whatever the server sent to any client, so none is a slow reader."""
    for r in select.select(socks, [], [], timeout)[0]:
        try:
            while r.recv(1 << 20):
                pass
        except BlockingIOError:
            pass

before = stats()
socks = []
for i in range(n):
    s = socket.create_connection(('127.0.0.1', port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(('GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n'
               'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n'
               'Cookie: %s\r\n\r\n' % (port, key, cookie)).encode())
    s.setblocking(False)
    socks.append(s)
    if i % 50 == 49:  # keep every client reading, or the join storm backs up
        drain(0)

deadline = time.time() + 60
while time.time() < deadline:
    s1 = stats()
    if s1['ws_clients'] >= n:
        break
    drain(0.2)
end = time.time() + hold
while time.time() < end:
    drain(0.2)
after = stats()
print(json.dumps({'clients': n, 'ws_clients': after['ws_clients'],
                  'processes': after['processes'], 'threads': after['threads'],
                  'rss_before': before['rss_bytes'], 'rss_after': after['rss_bytes'],
                  'pss_after': after['pss_bytes'],
                  'rss_per_client': (after['rss_bytes'] - before['rss_bytes']) / n}))

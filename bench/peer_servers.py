"""The peers the C models are compared with: nginx (the ceiling, from
bench/peers/nginx.conf) and Tornado (bench/peers/tornado_chat.py). Neither
prints chat-*'s `listening on` line, and each is found on the machine, not
built."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from server import Server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORNADO_PEER = os.path.join(ROOT, "bench", "peers", "tornado_chat.py")


def find_nginx():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def find_tornado():
    """A python3 that imports tornado, to run the peer with; or (None, why
    the tornado peer cannot run)."""
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if os.path.exists(TORNADO_PEER) and py and subprocess.run(
                [py, "-c", "import tornado"], capture_output=True).returncode == 0:
            return py, None
    return None, ("bench/peers/tornado_chat.py missing" if not os.path.exists(TORNADO_PEER)
                  else "python3-tornado not installed")


def tornado_cmd(py):
    return [py, TORNADO_PEER, "--listen", "127.0.0.1:0"]


def start_nginx(nginx, tmp, pin):
    """nginx from a copy of bench/peers/nginx.conf in a prefix under tmp, on
    a port chosen beforehand: nginx prints no line to read the port of a
    :0 listener from. Returns the Server and whether it accepts
    connections."""
    prefix = tempfile.mkdtemp(prefix="nginx-", dir=tmp)
    port = free_port()
    with open(os.path.join(ROOT, "bench", "peers", "nginx.conf")) as f:
        conf = f.read().replace("@PORT@", str(port)).replace("@PREFIX@", prefix)
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    cmd = [nginx, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"),
           "-e", os.path.join(prefix, "error.log")]
    srv = Server(cmd, pin, port=port)
    ok = srv.wait_ready(listening_line=False)
    return srv, ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

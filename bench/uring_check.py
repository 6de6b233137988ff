"""Can chat-uring run here? It is built only where liburing was found, and a
machine may forbid io_uring (seccomp in a container, kernel.io_uring_disabled),
in which case chat-uring says so in one line on stderr and exits 1 at start.
The bench asks the server itself, as it would be run: start it, wait for its
`listening on` line, ask GET /hello once, stop it."""
import http.client
import os

from server import Server


def uring_unavailable(binary, users, pin):
    """None when chat-uring starts and answers; else why not, in words."""
    if not os.access(binary, os.X_OK):
        return ("not built: no %s (CMake builds it only where liburing is found: "
                "apt-get install liburing-dev, then configure again)" % binary)
    srv = Server([binary, "--listen", "127.0.0.1:0", "--users", users], pin)
    try:
        if not srv.wait_ready(timeout=10):
            lines = [ln for ln in srv.stderr_tail(600).splitlines() if ln.strip()]
            if lines:
                return lines[-1].replace("chat-uring: ", "", 1)
            if srv.p.poll() is not None:
                return "exited with status %s before listening" % srv.p.returncode
            return "no `listening on` line within 10 s"
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            conn.request("GET", "/hello")
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as e:
            return "started, but GET /hello failed: %s" % e
        finally:
            conn.close()
        return None if status == 200 else "started, but GET /hello answered %d" % status
    finally:
        srv.stop()

#!/usr/bin/python3
"""The chat service as the seed wrote it: Tornado, one process, one IOLoop.

A reference column for `./lab bench`, written the way a Tornado user would
write it, not tuned. Only the routes the benchmark drives:

    GET  /hello          200 "Hello, world!\\n"
    GET  /sleep?ms=N     waits N ms (0..60000) on the loop, 200 "slept N ms\\n"
    POST /login          demo users coco, cc, aa (password 123456), PBKDF2-SHA256
                         100 000 rounds in the default thread pool; 303 to /chat
                         with Tornado's own signed cookie `session`
    GET  /chat/ws        the room: welcome / join / message / leave as JSON, per
                         ../shared/CONTRACT.md (seq from 1, ts in ms, history of
                         the last 50 messages, users sorted and distinct)
    GET  /stats          {"model": "tornado", "pid": ...}

Not here: the pages, /cpu, /search, the contract's cookie format, and the
1 MiB cut-off of a client that stops reading (Tornado buffers without bound).

usage: /usr/bin/python3 bench/peers/tornado_chat.py [--listen HOST:PORT]
Debian's python3-tornado (6.2) is installed for /usr/bin/python3.
"""
import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import os
import re
import resource
import secrets
import signal
import sys
import time

try:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
    import tornado.websocket
except ImportError:
    sys.exit(f"tornado_chat: no tornado for {sys.executable}: "
             "apt-get install python3-tornado and run it with /usr/bin/python3")

ITERATIONS = 100_000
DEMO_USERS = ("coco", "cc", "aa")
DEMO_PASSWORD = "123456"
SESSION_DAYS = 7
HISTORY = 50
MAX_MESSAGE = 4096


def pbkdf2(password, salt):
    # hashlib releases the GIL while OpenSSL hashes, so the pool really helps.
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)


class Users:
    """The demo accounts, hashed at start; never kept in clear."""

    def __init__(self):
        self.records = {}
        for name in DEMO_USERS:
            salt = secrets.token_bytes(16)
            self.records[name] = (salt, pbkdf2(DEMO_PASSWORD, salt))
        # An unknown name costs the same hash, so timing does not tell it apart.
        self.nobody = (secrets.token_bytes(16), b"")

    async def check(self, name, password):
        salt, want = self.records.get(name, self.nobody)
        loop = asyncio.get_running_loop()
        got = await loop.run_in_executor(None, pbkdf2, password, salt)
        return name in self.records and hmac.compare_digest(got, want)


class Room:
    """One room. The loop is the only thread touching it, so no lock: every
    event is numbered and sent to every member in one go, in seq order."""

    def __init__(self):
        self.members = set()
        self.seq = 0
        self.history = collections.deque(maxlen=HISTORY)

    def event(self, kind, user, **fields):
        self.seq += 1
        return {"type": kind, "seq": self.seq, "ts": int(time.time() * 1000),
                "user": user, **fields}

    def users(self):
        return sorted({m.user for m in self.members})  # code point order = UTF-8 byte order

    def broadcast(self, event):
        frame = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        for member in list(self.members):
            try:
                member.write_message(frame)
            except tornado.websocket.WebSocketClosedError:
                pass  # its on_close will say goodbye

    def join(self, member):
        self.members.add(member)
        member.write_message(json.dumps(
            {"type": "welcome", "user": member.user, "users": self.users(),
             "history": list(self.history)}, ensure_ascii=False, separators=(",", ":")))
        self.broadcast(self.event("join", member.user))

    def post(self, member, text):
        event = self.event("message", member.user, text=text)
        self.history.append(event)
        self.broadcast(event)

    def leave(self, member):
        if member in self.members:
            self.members.remove(member)
            self.broadcast(self.event("leave", member.user))


class HelloHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write("Hello, world!\n")


class SleepHandler(tornado.web.RequestHandler):
    async def get(self):
        ms = self.get_query_argument("ms", "")
        if not re.fullmatch(r"[0-9]{1,5}", ms) or int(ms) > 60000:
            raise tornado.web.HTTPError(400)
        await asyncio.sleep(int(ms) / 1000)
        self.set_header("Content-Type", "text/plain")
        self.write(f"slept {int(ms)} ms\n")


class LoginHandler(tornado.web.RequestHandler):
    async def post(self):
        name = self.get_body_argument("username", "")
        password = self.get_body_argument("password", "")
        if not await self.application.users.check(name, password):
            self.set_status(401)
            self.write("wrong user name or password\n")
            return
        self.set_secure_cookie("session", name, expires_days=None, httponly=True,
                               samesite="Lax", max_age=SESSION_DAYS * 86400)
        self.redirect("/chat", status=303)


class ChatSocket(tornado.websocket.WebSocketHandler):
    def prepare(self):
        # Before the upgrade: no valid session, no WebSocket.
        user = self.get_secure_cookie("session", max_age_days=SESSION_DAYS)
        if user is None:
            raise tornado.web.HTTPError(401)
        self.user = user.decode()

    def open(self):
        self.application.room.join(self)

    def on_message(self, message):
        if isinstance(message, bytes):
            self.close(1003, "text only")
        elif message.strip(" \t\n\r\f\v"):
            self.application.room.post(self, message)

    def on_close(self):
        self.application.room.leave(self)


class StatsHandler(tornado.web.RequestHandler):
    def get(self):
        self.write({"model": "tornado", "pid": os.getpid()})


def make_app():
    app = tornado.web.Application(
        [(r"/hello", HelloHandler), (r"/sleep", SleepHandler), (r"/login", LoginHandler),
         (r"/chat/ws", ChatSocket), (r"/stats", StatsHandler)],
        cookie_secret=secrets.token_bytes(32),
        websocket_max_message_size=MAX_MESSAGE)  # larger: close 1009
    app.users = Users()
    app.room = Room()
    return app


def quiet_closed_writes(loop, context):
    """write_message returns a task per frame; when its client is gone it fails
    with WebSocketClosedError and nobody awaits it. That is expected in a
    broadcast: drop those, log the rest as asyncio would."""
    if isinstance(context.get("exception"), tornado.websocket.WebSocketClosedError):
        return
    loop.default_exception_handler(context)


async def main():
    parser = argparse.ArgumentParser(description="c10k-lab's chat on Tornado")
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error("--listen wants HOST:PORT")

    # As every server of the lab: as many descriptors as allowed, a deep backlog.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("tornado_chat: demo accounts coco, cc, aa (password 123456)", file=sys.stderr)
    app = make_app()
    sockets = tornado.netutil.bind_sockets(int(port), host, backlog=4096)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    print(f"listening on http://{host}:{sockets[0].getsockname()[1]}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(quiet_closed_writes)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    server.stop()
    for member in list(app.room.members):
        member.close(1001, "going away")
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=2)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main())

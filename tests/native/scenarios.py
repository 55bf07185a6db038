#!/usr/bin/env python3
"""Scenarios for tests/native.rs: slixmpp, a native XMPP client library, against Aoba's
RFC 6120 TCP listeners: plaintext (SASL PLAIN allowed without TLS), STARTTLS, or XEP-0368
direct TLS, verifying the server's certificate against a test CA.

One scenario per run: `python3 scenarios.py NAME`, with slixmpp from tests/native/.deps on
PYTHONPATH. The Rust test passes, in the environment:

    AOBA_C2S_PORT  the TCP c2s port on 127.0.0.1
    AOBA_DOMAIN    the server's domain
    AOBA_USER      the user this client logs in as (on one shard)
    AOBA_TOKEN     that user's JWT, the SASL PLAIN password
    AOBA_PEER      the full JID of a WebSocket user on the other shard, driven by the test
    AOBA_ROOM      (muc) the room to join; the WebSocket user is in it as AOBA_PEER_NICK
    AOBA_TLS       plain (default), starttls (on AOBA_C2S_PORT) or direct (direct TLS on
                   AOBA_C2S_PORT); with TLS, AOBA_CA is the CA the certificate must chain to

Each wait is bounded (STEP) and so is the whole scenario (BOUND). A failure prints
`FAIL <scenario>: <why>` on stderr and exits 1. slixmpp's debug log (every stanza sent and
received) goes to stderr; lines `STEP <name>` on stdout tell the test where the scenario
is, and the test answers on stdin when a scenario waits for it.
"""

import asyncio
import logging
import os
import sys
import traceback

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout

PORT = int(os.environ["AOBA_C2S_PORT"])
DOMAIN = os.environ["AOBA_DOMAIN"]
USER = os.environ["AOBA_USER"]
TOKEN = os.environ["AOBA_TOKEN"]
PEER = JID(os.environ["AOBA_PEER"])
TLS = os.environ.get("AOBA_TLS", "plain")
CA = os.environ.get("AOBA_CA")

STEP = 15.0
BOUND = 60.0


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


async def within(aw, what, t=STEP):
    try:
        return await asyncio.wait_for(aw, t)
    except asyncio.TimeoutError:
        raise Failed(f"timed out ({t:.0f} s) waiting for {what}") from None


def step(name):
    """Tells the test that the scenario reached `name`."""
    print(f"STEP {name}", flush=True)


async def stdin_lines():
    """The test's answers on stdin, one per line."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def told(reader, word):
    """Waits until the test writes `word` on stdin."""
    line = await within(reader.readline(), f"{word!r} from the test on stdin")
    check(line.decode().strip() == word, f"expected {word!r} on stdin, got {line!r}")


def body_is(text, sender=None, mtype=None):
    def pred(m):
        return (
            m["body"] == text
            and (sender is None or m["from"] == sender)
            and (mtype is None or m["type"] == mtype)
        )

    return pred


class Client:
    """One slixmpp client on the plaintext TCP listener, remembering every message with a
    body and every presence it received, and the events it saw."""

    def __init__(self, resource, plugins=()):
        self.jid = JID(f"{USER}@{DOMAIN}/{resource}")
        x = ClientXMPP(
            self.jid,
            TOKEN,
            sasl_mech="PLAIN",
            plugin_config={"feature_mechanisms": {"unencrypted_plain": TLS == "plain"}},
        )
        # Exactly one way in, so that a failure of it is not hidden by a fallback.
        x.enable_direct_tls = TLS == "direct"
        x.enable_starttls = TLS == "starttls"
        x.enable_plaintext = TLS == "plain"
        if TLS != "plain":
            # CERT_REQUIRED against the test CA, with the hostname checked against the
            # domain (slixmpp sends it as SNI).
            from pathlib import Path

            x.ca_certs = Path(CA)
        self.tls_seen = []
        x.add_event_handler("ssl_cert", lambda pem: self.tls_seen.append(pem))
        for p in plugins:
            x.register_plugin(p)
        self.x = x
        self.messages = []
        self.presences = []
        self.events = []
        self.changed = asyncio.Event()
        x.add_event_handler("message", lambda m: self._got(self.messages, m))
        x.add_event_handler("presence", lambda p: self._got(self.presences, p))
        # xep_0045 keeps a room's presences out of the "presence" event.
        x.add_event_handler("groupchat_presence", lambda p: self._got(self.presences, p))
        for e in (
            "session_start",
            "session_resumed",
            "sm_enabled",
            "sm_failed",
            "failed_auth",
            "session_end",
            "disconnected",
            "stream_error",
            "receipt_received",
            "roster_update",
        ):
            x.add_event_handler(e, lambda d, e=e: self._got(self.events, (e, d)))

    def _got(self, into, item):
        into.append(item)
        self.changed.set()

    async def wait(self, into, what, pred, t=STEP):
        """The first item of `into` (messages, presences, events) that satisfies `pred`."""

        async def scan():
            while True:
                for item in into:
                    if pred(item):
                        return item
                failed = [d for (e, d) in self.events if e in ("failed_auth", "stream_error")]
                if failed:
                    raise Failed(f"{failed[0]} while waiting for {what}")
                self.changed.clear()
                await self.changed.wait()

        return await within(scan(), what, t)

    def event_count(self, name):
        return sum(1 for (e, _) in self.events if e == name)

    async def event(self, name, what, after=0):
        """Waits until event `name` has happened more than `after` times."""
        await self.wait(
            self.events, what, lambda _: self.event_count(name) > after, t=STEP
        )

    async def message(self, what, pred):
        return await self.wait(self.messages, what, pred)

    async def online(self):
        """Connects, logs in (SASL PLAIN with the JWT, restart, bind) and sends presence."""
        self.x.connect("127.0.0.1", PORT)
        await self.event("session_start", "session_start (SASL PLAIN with the JWT, restart, bind)")
        check(self.x.boundjid == self.jid, f"bound {self.x.boundjid}, asked for {self.jid}")
        if TLS == "plain":
            check(not self.tls_seen, "a TLS handshake on the plaintext listener")
        else:
            check(len(self.tls_seen) == 1, f"{len(self.tls_seen)} TLS handshakes, want 1")
            version = self.x.socket.version()
            check(version in ("TLSv1.3", "TLSv1.2"), f"TLS version {version}")
        self.x.send_presence()
        # RFC 6121 §4.2.2: the initial presence comes back to the sending resource.
        await self.wait(
            self.presences,
            "our own initial presence back",
            lambda p: p["from"] == self.jid and p["type"] == "available",
        )

    async def ping_server(self):
        """XEP-0199 ping to the server: a result, not an error."""
        try:
            ping = self.x.plugin["xep_0199"].send_ping(JID(DOMAIN), timeout=STEP)
            r = await within(ping, "ping result")
        except IqError as e:
            raise Failed(f"ping answered with an error: {e.iq}") from None
        except IqTimeout:
            raise Failed("no answer to the ping") from None
        check(r["type"] == "result", f"ping answered {r}")

    async def bye(self):
        """Ends the stream with </stream:stream>; the server answers with its own."""
        ends = self.event_count("disconnected")
        await within(self.x.disconnect(wait=STEP), "the end of the stream")
        await self.event("disconnected", "the end of the connection", after=ends)
        why = [d for (e, d) in self.events if e == "disconnected"][-1]
        # slixmpp's reason when the server's </stream:stream> came (not its own abort).
        check(why == "End of stream", f"the stream ended without the server's end: {why!r}")


async def roster_get(c):
    """A plain roster get, without a version, so the answer lists every item."""
    iq = c.x.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    try:
        return await within(iq.send(timeout=STEP), "roster result")
    except IqError as e:
        raise Failed(f"roster get answered with an error: {e.iq}") from None


# --- scenarios --------------------------------------------------------------------------


async def chat():
    """Login over TCP, presence, roster, ping; chat both ways with the WebSocket user."""
    c = Client("slix", ["xep_0199"])
    await c.online()
    # Roster: fetch it (which makes this resource one that gets roster pushes, RFC 6121
    # §2.1.6), add the peer, get the push, then the server lists it with its name.
    # slixmpp's update_roster writes subscription='none' in the set, which the server
    # ignores (RFC 6121 §2.1.2.5).
    await roster_get(c)
    try:
        r = await within(c.x.update_roster(PEER.bare, name="Web peer ☃"), "roster set result")
    except IqError as e:
        raise Failed(f"roster set answered with an error: {e.iq}") from None
    check(r["type"] == "result", f"roster set: {r}")
    # slixmpp answers a push only from our bare JID or none, and then raises roster_update.
    await c.wait(
        c.events,
        "the roster push of the new item",
        lambda ev: ev[0] == "roster_update"
        and ev[1]["type"] == "set"
        and PEER.bare in ev[1]["roster"]["items"],
    )
    r = await roster_get(c)
    items = r["roster"]["items"]
    check(PEER.bare in items, f"{PEER.bare} not in the roster: {r}")
    check(items[PEER.bare]["name"] == "Web peer ☃", f"roster item: {r}")
    await c.ping_server()
    # Chat: to the WebSocket user, and its answer back.
    c.x.send_message(mto=PEER, mbody="hello from slixmpp ☃ <&>", mtype="chat")
    m = await c.message(
        "the WebSocket user's answer",
        body_is("hello from websocket ☃ <&>", sender=PEER, mtype="chat"),
    )
    check(m["to"] == c.jid, f"answer addressed to {m['to']}")
    await c.bye()


async def receipts():
    """XEP-0184 both ways with the WebSocket user."""
    c = Client("slix", ["xep_0030", "xep_0184"])
    await c.online()
    m = c.x.make_message(mto=PEER, mbody="receipt please", mtype="chat")
    m["id"] = "slix-r1"
    m["request_receipt"] = True
    m.send()
    r = await c.wait(
        c.events,
        "the receipt for slix-r1 (receipt_received)",
        lambda ev: ev[0] == "receipt_received" and ev[1]["receipt"] == "slix-r1",
    )
    check(r[1]["from"] == PEER, f"receipt from {r[1]['from']}")
    # The peer's message asks for a receipt: slixmpp's xep_0184 answers it by itself
    # (auto_ack); the peer checks it and says "bye".
    await c.message(
        "the peer's message asking a receipt",
        body_is("receipt from you too", sender=PEER),
    )
    await c.message("the peer's bye after our receipt", body_is("bye", sender=PEER))
    await c.bye()


async def muc():
    """XEP-0045: join the room the WebSocket user is in, groupchat both ways, leave."""
    room = JID(os.environ["AOBA_ROOM"])
    peer_nick = os.environ["AOBA_PEER_NICK"]
    c = Client("slix", ["xep_0030", "xep_0045"])
    await c.online()
    try:
        pres, subject, occupants, history = await within(
            c.x.plugin["xep_0045"].join_muc_wait(room, "slix", maxstanzas=0, timeout=STEP),
            "the join (self-presence and subject)",
        )
    except Exception as e:  # PresenceError: the room refused us
        if isinstance(e, Failed):
            raise
        raise Failed(f"join refused: {e!r}") from None
    check(pres["from"] == JID(f"{room}/slix"), f"self-presence from {pres['from']}")
    check(110 in pres["muc"]["status_codes"], f"no status 110 in {pres}")
    nicks = [p["from"].resource for p in occupants]
    check(peer_nick in nicks, f"occupants {nicks} lack {peer_nick}")
    c.x.send_message(mto=room, mbody="hello room from slixmpp", mtype="groupchat")
    # The room reflects our own message to us, and the WebSocket occupant answers.
    await c.message(
        "our groupchat message reflected",
        body_is("hello room from slixmpp", sender=JID(f"{room}/slix"), mtype="groupchat"),
    )
    await c.message(
        "the WebSocket occupant's groupchat message",
        body_is(
            "hello room from websocket",
            sender=JID(f"{room}/{peer_nick}"),
            mtype="groupchat",
        ),
    )
    c.x.plugin["xep_0045"].leave_muc(room, "slix")
    await c.wait(
        c.presences,
        "our unavailable presence from the room",
        lambda p: p["from"] == JID(f"{room}/slix") and p["type"] == "unavailable",
    )
    await c.bye()


async def sm():
    """XEP-0198: enable with resume; the TCP connection drops (no </stream:stream>); the
    peer sends a message meanwhile; reconnect, resume: everything exactly once."""
    told_by = await stdin_lines()
    c = Client("slix", ["xep_0199", "xep_0198"])
    await c.online()
    await c.event("sm_enabled", "<enabled/> (XEP-0198)")
    sm = c.x.plugin["xep_0198"]
    check(sm.sm_id, "<enabled/> without an id: no resumption offered")
    previd = sm.sm_id
    # A message to the peer, then a ping: the ping's answer shows the server read the
    # message. Nothing is acknowledged yet, so it is in slixmpp's unacked queue when the
    # connection drops; the h of <resumed/> must clear it (no second copy to the peer).
    c.x.send_message(mto=PEER, mbody="before the drop", mtype="chat")
    await c.ping_server()
    # Drop the connection: close the socket, no </stream:stream>.
    c.x.abort()
    await c.event("disconnected", "the end of the connection")
    check(c.event_count("session_end") == 0, "slixmpp ended the session on the drop")
    step("dropped")
    # The peer sends "while away" now; the server keeps it for the detached session.
    await told(told_by, "sent")
    starts = c.event_count("session_start")
    c.x.connect("127.0.0.1", PORT)
    await c.wait(
        c.events,
        "<resumed/> (session_resumed)",
        lambda ev: ev[0] in ("session_resumed", "sm_failed")
        or (ev[0] == "session_start" and c.event_count("session_start") > starts),
    )
    check(c.event_count("sm_failed") == 0, "the server refused to resume (<failed/>)")
    names = [e for (e, _) in c.events]
    check(c.event_count("session_resumed") == 1, f"no resumption: events {names}")
    check(sm.sm_id == previd, f"resumed stream id {sm.sm_id}, was {previd}")
    check(c.x.boundjid == c.jid, f"bound {c.x.boundjid} after resuming")
    await c.message("the message sent while away", body_is("while away", sender=PEER))
    # Ask the peer to end: its "bye" comes after anything the server replayed.
    c.x.send_message(mto=PEER, mbody="resumed", mtype="chat")
    await c.message("the peer's bye", body_is("bye", sender=PEER))
    away = [m for m in c.messages if m["body"] == "while away"]
    check(len(away) == 1, f"'while away' delivered {len(away)} times")
    await c.ping_server()
    await c.bye()


SCENARIOS = {f.__name__: f for f in (chat, receipts, muc, sm)}


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in SCENARIOS:
        print(f"usage: scenarios.py {'|'.join(SCENARIOS)}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format="%(relativeCreated)7.0f %(levelname).1s %(name)s: %(message)s",
    )
    code = 0
    try:
        asyncio.run(within(SCENARIOS[name](), f"the end of scenario {name}", BOUND))
        print(f"ok {name}", flush=True)
    except Failed as e:
        print(f"FAIL {name}: {e}", file=sys.stderr, flush=True)
        code = 1
    except BaseException:
        print(f"FAIL {name}: unexpected exception", file=sys.stderr)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # No waiting for slixmpp's leftover tasks or threads: the verdict is in.
    os._exit(code)


if __name__ == "__main__":
    main()

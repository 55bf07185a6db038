#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries for the fuzz targets into fuzz/seeds/<target>/
and fuzz/dict/<target>.dict.

Seeds come from the string literals of the integration tests (tests/*.rs) and of the unit
tests of the parsers under src/ (XML stanzas, JIDs, HTTP requests, Socket.IO/primus
packets), plus frames and requests built from them here (masked WebSocket frames of every
length form, upgrade requests on every path, one JSON payload per XMPP-FTW event).
Usage: python3 fuzz/seeds.py  (from anywhere; paths are relative to this file)
"""

import hashlib
import json
import os
import re
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "seeds")
DICT = os.path.join(HERE, "dict")

SOURCES = [os.path.join(ROOT, "tests", f) for f in sorted(os.listdir(os.path.join(ROOT, "tests")))
           if f.endswith(".rs")]
SOURCES += [os.path.join(ROOT, "tests", "common", "mod.rs")]
for d, _, files in os.walk(os.path.join(ROOT, "src")):
    SOURCES += [os.path.join(d, f) for f in sorted(files) if f.endswith(".rs")]

ESC = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def rust_strings(text):
    """Yields the values of the string literals in Rust source `text` ("..." and r#"..."#)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "r" and i + 1 < n and text[i + 1] in '#"' and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            j = i + 1
            while j < n and text[j] == "#":
                j += 1
            if j < n and text[j] == '"':
                end = '"' + "#" * (j - i - 1)
                k = text.find(end, j + 1)
                if k < 0:
                    return
                yield text[j + 1:k]
                i = k + len(end)
                continue
        if c == "'" and i + 2 < n:
            # char literal ('"', '\'', 'x') or lifetime: skip it so its quote is not a string.
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", text[i:])
            if m:
                i += m.end()
                continue
        if c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    e = text[j + 1]
                    if e in ESC:
                        buf.append(ESC[e])
                        j += 2
                    elif e == "x":
                        buf.append(chr(int(text[j + 2:j + 4], 16)))
                        j += 4
                    elif e == "u":
                        k = text.find("}", j)
                        buf.append(chr(int(text[j + 3:k], 16)))
                        j = k + 1
                    elif e == "\n":  # line continuation
                        j += 2
                        while j < n and text[j] in " \t\n\r":
                            j += 1
                    else:
                        buf.append(e)
                        j += 2
                else:
                    buf.append(text[j])
                    j += 1
            yield "".join(buf)
            i = j + 1
            continue
        i += 1


def variants(s):
    """The literal, and if it is a format string, with {{ }} collapsed and holes filled."""
    out = {s}
    if "{" in s:
        t = s.replace("{{", "\x01").replace("}}", "\x02")
        t = re.sub(r"\{[a-zA-Z_0-9.:?#]*\}", "juliet@localhost", t)
        out.add(t.replace("\x01", "{").replace("\x02", "}"))
    return out


def mask(payload, key=b"\x37\xfa\x21\x3d"):
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_frame(opcode, payload, fin=True, key=b"\x37\xfa\x21\x3d", form=None):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if form is None:
        form = 0 if n < 126 else (1 if n < 65536 else 2)
    if form == 0:
        head += bytes([0x80 | n])
    elif form == 1:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + mask(payload, key)


EVENT_PAYLOADS = {
    "xmpp.presence": [{"show": "away", "status": "a<b & 'c'", "priority": -5}, None,
                      {"to": "room@conference.localhost/nick", "type": "unavailable"}],
    "xmpp.presence.offline": [None],
    "xmpp.presence.get": [{"to": "romeo@localhost/phone"}],
    "xmpp.presence.subscribe": [{"to": "romeo@localhost"}],
    "xmpp.presence.subscribed": [{"to": "romeo@localhost"}],
    "xmpp.presence.unsubscribe": [{"to": "romeo@localhost"}],
    "xmpp.presence.unsubscribed": [{"to": "romeo@localhost"}],
    "xmpp.roster.get": [{}],
    "xmpp.roster.add": [{"jid": "romeo@localhost", "name": "Romeo", "groups": ["Friends", "Montague"]}],
    "xmpp.roster.edit": [{"jid": "romeo@localhost", "name": "R", "groups": []}],
    "xmpp.roster.group": [{"jid": "romeo@localhost", "group": "Family"}],
    "xmpp.roster.remove": [{"jid": "romeo@localhost"}],
    "xmpp.chat.message": [{"to": "romeo@localhost", "content": "hi <there> & 'you'", "receipt": True},
                          {"to": "romeo@localhost/phone", "state": "composing"},
                          {"to": "romeo@localhost", "content": "fixed", "replace": "ftw1", "id": "x-1"}],
    "xmpp.chat.receipt": [{"to": "romeo@localhost/phone", "id": "x-r1"}],
    "xmpp.muc.join": [{"room": "group-1@conference.localhost", "nick": "jules", "password": "pw",
                       "history": {"maxstanzas": 5, "maxchars": 100, "seconds": 60,
                                   "since": "2020-01-01T00:00:00Z"}}],
    "xmpp.muc.leave": [{"room": "group-1@conference.localhost", "status": "bye"}],
    "xmpp.muc.message": [{"room": "group-1@conference.localhost", "content": "hello all"},
                         {"room": "group-1@conference.localhost", "to": "nick", "content": "psst"}],
    "xmpp.muc.subject": [{"room": "group-1@conference.localhost", "subject": "Topic"}],
    "xmpp.muc.role.set": [{"room": "group-1@conference.localhost", "nick": "bob", "role": "moderator",
                           "reason": "trusted"}],
    "xmpp.muc.affiliation": [{"room": "group-1@conference.localhost", "jid": "bob@localhost",
                              "affiliation": "admin", "reason": "r"}],
    "xmpp.muc.room.config.get": [{"room": "group-1@conference.localhost"}],
    "xmpp.muc.room.config.set": [{"room": "group-1@conference.localhost",
                                  "form": [{"var": "muc#roomconfig_roomname", "value": "Name"},
                                           {"var": "muc#roomconfig_persistentroom", "value": True},
                                           {"var": "muc#roomconfig_roomadmins", "type": "jid-multi",
                                            "value": ["a@localhost", "b@localhost"]}]}],
    "xmpp.muc.destroy": [{"room": "group-1@conference.localhost", "reason": "done",
                          "alternative": "group-2@conference.localhost"}],
    "xmpp.muc.invite": [{"room": "group-1@conference.localhost", "to": "romeo@localhost", "reason": "join"}],
    "xmpp.muc.invite.decline": [{"room": "group-1@conference.localhost", "to": "romeo@localhost"}],
    "xmpp.discover.info": [{"of": "localhost", "node": "http://jabber.org/protocol/commands"}],
    "xmpp.discover.items": [{"of": "conference.localhost"}],
    "xmpp.ping": [{"to": "localhost"}, {}],
    "xmpp.mam.query": [{"queryId": "q1", "with": "romeo@localhost", "start": "2020-01-01T00:00:00Z",
                        "end": "2030-01-01T00:00:00Z", "rsm": {"max": 10, "after": "a", "before": ""}}],
    "xmpp.mam.preferences": [{"default": "roster", "always": ["romeo@localhost"], "never": ["x@localhost"]}],
    "xmpp.login": [{"jid": "juliet@localhost", "resource": "web", "password": "t"}],
}
# Must match EVENTS in fuzz_targets/ftw.rs.
EVENTS = ["xmpp.presence", "xmpp.presence.offline", "xmpp.presence.get", "xmpp.presence.subscribe",
          "xmpp.presence.subscribed", "xmpp.presence.unsubscribe", "xmpp.presence.unsubscribed",
          "xmpp.roster.get", "xmpp.roster.add", "xmpp.roster.edit", "xmpp.roster.group",
          "xmpp.roster.remove", "xmpp.chat.message", "xmpp.chat.receipt", "xmpp.muc.join",
          "xmpp.muc.leave", "xmpp.muc.message", "xmpp.muc.subject", "xmpp.muc.role.set",
          "xmpp.muc.affiliation", "xmpp.muc.room.config.get", "xmpp.muc.room.config.set",
          "xmpp.muc.destroy", "xmpp.muc.invite", "xmpp.muc.invite.decline", "xmpp.discover.info",
          "xmpp.discover.items", "xmpp.ping", "xmpp.mam.query", "xmpp.mam.preferences", "xmpp.login",
          "xmpp.unknown", "nope"]

UPGRADE = ("GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}{cookie}\r\n")

DICTS = {
    "stanza": ["<", ">", "</", "/>", "='", "'", '="', '"', "xmlns", "xmlns:", "xml:lang", "&amp;", "&lt;",
               "&gt;", "&apos;", "&quot;", "&#", "&#x", ";", "<![CDATA[", "]]>", "<?xml version='1.0'?>",
               "<!--", "-->", "<!DOCTYPE", "<?", "?>", "\r\n", "message", "body", "iq", "presence",
               "jabber:client", "urn:ietf:params:xml:ns:xmpp-framing", "http://www.w3.org/XML/1998/namespace",
               "http://www.w3.org/2000/xmlns/"],
    "http": ["GET ", "POST ", " HTTP/1.1\r\n", "\r\n", "\r\n\r\n", ": ", "/xmpp", "/ws/xmpp", "/ws", "/health",
             "/socket.io/", "/ftw", "?EIO=4", "&transport=websocket", "Upgrade", "websocket", "Connection",
             "Sec-WebSocket-Key", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Protocol", "xmpp", "Cookie",
             "auth_token=", "; ", ","],
    "jid": ["@", "/", ".", "[", "]", "::1", "localhost", "conference.", "\x00", "\u0130", "\u212a", "\u023a",
            "\u1e9e", " ", "\t"],
    "ftw": ["42", "40", "41", "43", "2", "3", "6", "/chat,", "[", "]", "{", "}", ":", ",", "\"", "null",
            "true", "false", "\"type\":0", "\"data\":", "\"id\":", "primus::ping::"]
            + ['"%s"' % e for e in EVENTS]
            + sorted({'"%s"' % k for v in EVENT_PAYLOADS.values() for p in v if isinstance(p, dict) for k in p}),
}


def main():
    literals = set()
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            for s in rust_strings(f.read()):
                literals |= variants(s)
    seeds = {t: set() for t in ("websocket", "http", "stanza", "jid", "ftw", "framer")}

    stanzas = {s.strip() for s in literals if s.strip().startswith("<") and len(s) < 20000}
    seeds["stanza"] |= {s.encode() for s in stanzas}
    # TCP streams (RFC 6120): four bytes that pick the read cuts, then a header and stanzas.
    header = ("<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
              "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
    some = sorted(stanzas)[:400]
    for i, st in enumerate(some):
        cut = bytes([i % 256, (i * 7) % 256, 3, 17])
        seeds["framer"].add(cut + (header + st + " " + st + "</stream:stream>").encode())
        seeds["framer"].add(cut + (header + st).encode())

    jid_re = re.compile(r"^[^\s<>'\"{}]*[@/.][^\s<>'\"{}]*$|^\[.*\]$")
    jids = {s for s in literals if 0 < len(s) < 3100 and (jid_re.match(s) or "@" in s) and "<" not in s}
    seeds["jid"] |= {s.encode() for s in jids}
    seeds["jid"] |= {b"juliet\x00example.com\x00balcony", b"\xc4\xb0\x00EXAMPLE.com.\x00r"}

    for s in literals:
        if "HTTP/1." in s:
            seeds["http"].add(s.encode())
            seeds["http"].add((s + "\r\n").encode())
    for path, proto in [("/xmpp", "Sec-WebSocket-Protocol: xmpp\r\n"), ("/ws/xmpp", "Sec-WebSocket-Protocol: chat, xmpp\r\n"),
                        ("/ws", "Sec-WebSocket-Protocol: xmpp\r\n"), ("/socket.io/?EIO=4&transport=websocket", ""),
                        ("/socket.io?EIO=3&transport=polling", ""), ("/ftw", ""), ("/health", ""), ("/nope", "")]:
        for cookie in ["", "Cookie: a=b; auth_token=\"eyJ.x.y\"\r\n", "Cookie: auth_token=\r\n"]:
            seeds["http"].add(UPGRADE.format(path=path, proto=proto, cookie=cookie).encode())
    seeds["http"].add(b"POST /health HTTP/1.1\r\n\r\n")

    # Socket.IO / primus text as written in the tests, with the mode byte first.
    for s in literals:
        if re.match(r"^(4[0-6]|[0-6]$|[1-6][^0-9]|\{\"type\"|\"primus::)", s) and len(s) < 5000:
            seeds["ftw"].add(b"\x00" + s.encode())
            seeds["ftw"].add(b"\x01" + s.encode())
    for name, payloads in EVENT_PAYLOADS.items():
        idx = EVENTS.index(name)
        for p in payloads:
            body = json.dumps(p, separators=(",", ":"))
            seeds["ftw"].add(b"\x00" + ("42[%s,%s]" % (json.dumps(name), body)).encode())
            seeds["ftw"].add(b"\x00" + ("4217[%s,%s]" % (json.dumps(name), body)).encode())
            seeds["ftw"].add(b"\x01" + json.dumps({"type": 0, "data": [name, p], "id": 3}).encode())
            seeds["ftw"].add(b"\x02" + bytes([idx | 0x80]) + body.encode())
            seeds["ftw"].add(b"\x02" + bytes([idx]) + body.encode())
    for s in ["40", "40/chat,", "40{\"token\":1}", "41", "1", "2probe", "3", "6", "43[1]",
              "451-[\"x\",{\"_placeholder\":true,\"num\":0}]"]:
        seeds["ftw"].add(b"\x00" + s.encode())
    for s in ['"primus::ping::1700000000000"', '{"type":1,"id":2,"data":[null,true]}', '"hello"']:
        seeds["ftw"].add(b"\x01" + s.encode())

    # WebSocket frames: selector byte (payload limit (b<<8)|b) then frames.
    small = sorted(stanzas, key=len)[:40]
    for s in small:
        p = s.encode()
        seeds["websocket"].add(b"\xff" + ws_frame(0x1, p))
        seeds["websocket"].add(b"\x01" + ws_frame(0x1, p))
        half = len(p) // 2
        seeds["websocket"].add(b"\xff" + ws_frame(0x1, p[:half], fin=False) + ws_frame(0x0, p[half:]))
    for form, n in [(0, 0), (0, 125), (1, 126), (1, 300), (2, 70000 % 1000), (1, 2000)]:
        seeds["websocket"].add(b"\xff" + ws_frame(0x2, bytes(range(256)) * (n // 256) + bytes(n % 256), form=form))
    seeds["websocket"].add(b"\x10" + ws_frame(0x9, b"ping") + ws_frame(0xA, b"") + ws_frame(0x8, b"\x03\xe8bye"))
    seeds["websocket"].add(b"\x10" + bytes([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]))
    seeds["websocket"].add(b"\x10\x81\x01a")  # unmasked
    seeds["websocket"].add(b"\x10\xc1\x81\0\0\0\0a")  # RSV1

    shutil.rmtree(OUT, ignore_errors=True)
    for target, items in seeds.items():
        d = os.path.join(OUT, target)
        os.makedirs(d)
        for data in items:
            with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
                f.write(data)
    os.makedirs(DICT, exist_ok=True)
    for target, words in DICTS.items():
        with open(os.path.join(DICT, target + ".dict"), "w", encoding="utf-8") as f:
            for w in words:
                esc = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"\\' else
                              "".join("\\x%02X" % b for b in c.encode()) for c in w)
                f.write('"%s"\n' % esc)
    for target in seeds:
        print("%-10s %5d seeds" % (target, len(seeds[target])), file=sys.stderr)


if __name__ == "__main__":
    main()

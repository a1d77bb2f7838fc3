#!/usr/bin/env python3
"""tests/page_check.py: the server's chat page (src/server_page.html) in a real browser.

    python3 tests/page_check.py URL --chromium BIN --desktop OUT.png --phone OUT.png [--timeout S]

URL is the page of a running server (build/chNN --server ..., or any server with the same API);
this script starts no server. It starts headless Chromium and drives it over the Chrome
DevTools Protocol (CDP), through a WebSocket client written here, so that it needs nothing but
Python's standard library. It uses the page as a person would: types a message, clicks Send,
watches the reply stream in, sends a second one with Enter and stops it half-way, and checks
what the page shows after each step. Then it feeds the page two answers of its own (the
protocol's Fetch domain stands in for the server): an error, and a reply full of HTML, which must
be shown as text. All along it records every request the page makes (only its own server's
API may be asked) and every console error and uncaught exception (there must be none). It
saves a screenshot at desktop size and one at phone size.

Prints one line per check, "ok    NAME" or "FAIL  NAME: why" (the lines tests/lib.sh counts),
and exits 0 when every check passed, 1 otherwise. The browser is always killed at the end,
and the whole run is bounded by --timeout seconds. PAGE_CHECK_DEBUG=1 logs every DevTools
command and event on stderr.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

# ---- A WebSocket client (RFC 6455), just what CDP needs -----------------------------------


class WebSocket:
    """Text messages over one WebSocket: the HTTP upgrade, masked frames out, frames in."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url, timeout=10):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           % (path, u.hostname, u.port or 80, key)).encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill(time.monotonic() + timeout)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101 ", lines[0]):
            raise RuntimeError("WebSocket upgrade refused: " + lines[0])
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
        if headers.get("sec-websocket-accept") != accept:
            raise RuntimeError("WebSocket upgrade: wrong Sec-WebSocket-Accept")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("WebSocket: no data")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError("WebSocket: no data") from None
        if not data:
            raise ConnectionError("WebSocket: the browser closed the connection")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        """One final frame; a client masks every frame it sends."""
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout):
        """The next text message (fragments joined), or TimeoutError; answers pings."""
        deadline = time.monotonic() + timeout
        parts = []
        while True:
            b0, b1 = self._take(2, deadline)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8, deadline))[0]
            mask = self._take(4, deadline) if b1 & 0x80 else None
            payload = self._take(n, deadline)
            if mask:
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("WebSocket: closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode("utf-8")
            # pong (0xA) and anything else: ignored

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


# ---- The DevTools protocol over it -------------------------------------------------------


class CDP:
    """Commands with ids, their replies, and every event handed to on_event as it arrives."""

    def __init__(self, ws, on_event):
        self.ws, self.on_event, self.next_id = ws, on_event, 0

    def call(self, method, params=None, timeout=30):
        if os.environ.get("PAGE_CHECK_DEBUG"):
            sys.stderr.write("%.3f call %s %s\n" % (time.monotonic(), method, json.dumps(params)[:100]))
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(max(0.01, deadline - time.monotonic())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"].get("message")))
                return msg.get("result", {})
            if "method" in msg:
                self.on_event(msg["method"], msg.get("params", {}))

    def pump(self, seconds):
        """Handle the events of the next SECONDS."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = json.loads(self.ws.recv(max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                return
            if "method" in msg:
                self.on_event(msg["method"], msg.get("params", {}))


# ---- The test ----------------------------------------------------------------------------


class Failed(Exception):
    """A check failed; the message says why."""


class OutOfTime(BaseException):
    """The whole run took too long: not caught by a check, it ends the run."""


class PageCheck:
    API_PATHS = ("/", "/health", "/v1/models", "/v1/chat/completions")

    def __init__(self, url, args):
        self.url, self.args = url, args
        u = urllib.parse.urlsplit(url)
        self.origin = "%s://%s" % (u.scheme, u.netloc)
        self.passed = self.failed = 0
        self.requests = []        # (url, method, postData) of every request the page made
        self.problems = []        # console errors and exceptions
        self.excused = False      # while True, the network errors we caused ourselves are fine
        self.paused = []          # chat requests held by the Fetch domain, for the test to pass on

    # -- results
    def ok(self, name):
        self.passed += 1
        print("ok    " + name, flush=True)

    def bad(self, name, why):
        self.failed += 1
        print("FAIL  %s: %s" % (name, why), flush=True)

    def check(self, name, fn):
        try:
            fn()
            self.ok(name)
            return True
        except Failed as e:
            self.bad(name, str(e))
        except (TimeoutError, RuntimeError, ConnectionError, OSError) as e:
            self.bad(name, "%s: %s" % (type(e).__name__, e))
        return False

    # -- events
    def on_event(self, method, p):
        if os.environ.get("PAGE_CHECK_DEBUG"):
            sys.stderr.write("%.3f event %s %s\n" % (time.monotonic(), method, json.dumps(p)[:160]))
        if method == "Network.requestWillBeSent":
            r = p["request"]
            self.requests.append((r["url"], r["method"], r.get("postData")))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.problems.append("exception: " + d.get("exception", {}).get("description", d.get("text", "?")))
        elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            self.problems.append("console.%s: %s" % (p["type"], " ".join(str(a.get("value", a.get("description", "")))
                                                                          for a in p.get("args", []))))
        elif method == "Log.entryAdded":
            e = p["entry"]
            if e["level"] != "error":
                return
            # a 503 from /health while the model loads is the page's normal wait
            if e.get("source") == "network" and (self.excused or (e.get("url", "").endswith("/health") and "503" in e["text"])):
                return
            self.problems.append("%s: %s %s" % (e.get("source"), e["text"], e.get("url", "")))
        elif method == "Fetch.requestPaused":
            self.paused.append(p)

    # -- the page
    def js(self, expr):
        r = self.cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise Failed("script failed: %s: %s" % (expr[:60], r["exceptionDetails"].get("text")))
        return r["result"].get("value")

    def wait(self, expr, timeout, what):
        """Poll EXPR until it is truthy; its value, or Failed after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.js(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise Failed("timed out after %g s waiting for %s" % (timeout, what))
            self.cdp.pump(0.05)

    def click(self, selector):
        """A real mouse click in the middle of the element (so it must be visible and on top)."""
        box = self.js("(function(){var e=document.querySelector(%s); if(!e) return null; e.scrollIntoView({block:'nearest'});"
                      "var r=e.getBoundingClientRect(); return [r.x+r.width/2, r.y+r.height/2];})()" % json.dumps(selector))
        if not box:
            raise Failed("no element " + selector)
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.cdp.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def type_text(self, text):
        self.js("document.getElementById('input').focus()")
        self.cdp.call("Input.insertText", {"text": text})

    def press_enter(self):
        for kind in ("keyDown", "keyUp"):
            self.cdp.call("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                     "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13,
                                                     **({"text": "\r"} if kind == "keyDown" else {})})

    def last_assistant(self, prop):
        return "(function(){var a=document.querySelectorAll('#messages .msg.assistant'); var b=a[a.length-1];" \
               " return b ? %s : null;})()" % prop

    def watch_last_reply(self):
        """Record the text length of the newest assistant bubble at each change, until it is done."""
        self.js("""(function(){ window.__lens = [];
            if (window.__obs) window.__obs.disconnect();
            window.__obs = new MutationObserver(function(){
              var a = document.querySelectorAll('#messages .msg.assistant'), b = a[a.length-1];
              if (!b || b.getAttribute('data-done') === '1') return;
              var n = b.textContent.length, l = window.__lens;
              if (n && (!l.length || l[l.length-1] !== n)) l.push(n);
            });
            window.__obs.observe(document.getElementById('messages'), {childList:true, subtree:true, characterData:true});
          })()""")

    def screenshot(self, width, height, mobile, path):
        self.cdp.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": mobile})
        self.cdp.pump(0.3)   # let the layout settle
        png = base64.b64decode(self.cdp.call("Page.captureScreenshot", {"format": "png"})["data"])
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise Failed("not a PNG")
        w, h = struct.unpack("!II", png[16:24])
        if (w, h) != (width, height):
            raise Failed("the screenshot is %dx%d, not %dx%d" % (w, h, width, height))
        with open(path, "wb") as f:
            f.write(png)

    # -- the checks, in order
    def run(self, cdp):
        self.cdp = cdp
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(domain + ".enable")
        # every chat request stops at the Fetch domain, and the test passes it on (changed or
        # not) or answers it itself; enabled once, before the page exists, since a Fetch.enable
        # just before a request may not yet hold it
        cdp.call("Fetch.enable", {"patterns": [{"urlPattern": "*/v1/chat/completions*", "requestStage": "Request"}]})
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 800, "deviceScaleFactor": 1, "mobile": False})

        def load():
            cdp.call("Page.navigate", {"url": self.url})
            self.wait("document.readyState === 'complete' && !!document.getElementById('messages')", 20, "the page to load")
            for i in ("messages", "input", "send", "stop", "new", "model", "speed"):
                if not self.js("!!document.getElementById('%s')" % i):
                    raise Failed("no #" + i)
        if not self.check("page: loads, with every element the test uses", load):
            return

        def model():
            name = self.wait("document.getElementById('model').textContent.trim()", self.args.load_timeout, "#model to show a name")
            if self.js("document.getElementById('send').disabled"):
                raise Failed("#send is disabled though the model %r is shown" % name)
        if not self.check("page: shows the model's name", model):
            return

        def first_reply():
            self.js("document.getElementById('max_tokens').value = '%d'" % self.args.first_tokens)
            self.watch_last_reply()
            self.type_text("Tell me a short story about a llama who reads books.")
            self.click("#send")
            # "ignore_eos": true (see the second message), so that the reply is long enough to be
            # seen growing: a reply of a few tokens can arrive in one piece
            self.forward_chat("the first message", self.no_eos)
            self.wait(self.last_assistant("b.getAttribute('data-done') === '1'"), 60, "the reply to end (data-done=\"1\")")
            lens = self.js("window.__lens")
            finish = self.js(self.last_assistant("b.getAttribute('data-finish')"))
            text = self.js(self.last_assistant("b.textContent"))
            if finish not in ("stop", "length"):
                raise Failed("data-finish=%r, text %r" % (finish, text[:200]))
            if len(lens) < 2:
                raise Failed("the text was seen at %d length(s) %s before it ended: no streaming seen" % (len(lens), lens))
            if not self.js("document.getElementById('input').value === ''"):
                raise Failed("the text box was not emptied")
        streamed = self.check("page: the reply streams in (several growing texts), then ends", first_reply)

        def speed():
            s = self.js("document.getElementById('speed').textContent")
            if not re.search(r"\d+(\.\d+)? tok/s", s or ""):
                raise Failed("#speed shows %r" % s)
        if streamed:
            self.check("page: shows the reply's speed in tok/s", speed)

        self.second = None

        def stop():
            self.js("document.getElementById('max_tokens').value = '%d'" % self.args.long_tokens)
            self.watch_last_reply()
            self.type_text("Now tell me a much longer one, with many chapters.")
            self.press_enter()   # Enter sends
            # the request gets "ignore_eos": true on its way (llama.cpp's and our server's
            # extension; others ignore it), so that the reply cannot end by itself before Stop
            self.second = self.forward_chat("the second message", self.no_eos)
            self.wait(self.last_assistant("b.textContent.length > 0 && !b.getAttribute('data-done')") + " || " +
                      self.last_assistant("b.getAttribute('data-done') === '1'"), 60, "the second reply to start")
            if self.js(self.last_assistant("b.getAttribute('data-done')")):
                raise Failed("the reply ended (%s) before Stop could be clicked" % self.js(self.last_assistant("b.getAttribute('data-finish')")))
            if self.js("document.getElementById('stop').disabled"):
                raise Failed("#stop is disabled while the reply streams")
            if not self.js("document.getElementById('send').disabled"):
                raise Failed("#send is enabled while the reply streams")
            self.cdp.pump(0.3)
            self.click("#stop")
            self.wait(self.last_assistant("b.getAttribute('data-done') === '1'"), 10, "the stopped reply to end")
            finish = self.js(self.last_assistant("b.getAttribute('data-finish')"))
            if finish != "stopped":
                raise Failed("data-finish=%r, expected 'stopped'" % finish)
            if self.js("document.getElementById('send').disabled") or not self.js("document.getElementById('stop').disabled"):
                raise Failed("after Stop, #send should be enabled and #stop disabled")
        stopped = streamed and self.check("page: Enter sends, Stop ends the reply (data-finish=stopped), Send is enabled again", stop)

        def history():
            body = json.loads(self.body_of(self.second["request"]))
            roles = [m["role"] for m in body["messages"]]
            if roles != ["user", "assistant", "user"] or body.get("stream") is not True:
                raise Failed("the second request had roles %s, stream %r" % (roles, body.get("stream")))
            if body.get("max_tokens") != self.args.long_tokens:
                raise Failed("max_tokens %r, the settings said %d" % (body.get("max_tokens"), self.args.long_tokens))
        if stopped and self.second:
            self.check("page: the second request carries the conversation and the settings", history)

        self.check("page: screenshot at desktop size (1100x800)", lambda: self.screenshot(1100, 800, False, self.args.desktop))

        def phone():
            self.screenshot(375, 740, True, self.args.phone)
            # against 375 px, not innerWidth: a phone widens its layout to fit a page too wide
            over = self.js("""(function(){ var w = 375, bad = [];
                if (window.innerWidth !== w) bad.push('the layout is ' + window.innerWidth + ' px wide');
                if (document.documentElement.scrollWidth > w) bad.push('the page is ' + document.documentElement.scrollWidth + ' px wide');
                ['input','send','stop','new','messages'].forEach(function(id){ var r = document.getElementById(id).getBoundingClientRect();
                  if (r.left < 0 || r.right > w + 0.5 || r.width <= 0 || r.bottom > window.innerHeight + 0.5) bad.push('#' + id + ' is outside the screen'); });
                return bad.join('; '); })()""")
            if over:
                raise Failed(over)
        self.check("page: fits a phone's screen (375x740), screenshot", phone)
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 800, "deviceScaleFactor": 1, "mobile": False})

        self.check("page: an error answer (HTTP 400) is shown in the conversation", self.injected_error)
        self.check("page: model output is shown as text, never as HTML", self.injected_html)

        def new():
            self.click("#new")
            self.wait("document.querySelectorAll('#messages .msg').length === 0", 5, "New conversation to clear the messages")
        self.check("page: New conversation clears the conversation", new)

        cdp.pump(0.3)

        def origins():
            other = sorted({r[0] for r in self.requests
                            if not r[0].startswith(("data:", "about:")) and not r[0].startswith(self.origin + "/")})
            if other:
                raise Failed("requests to another origin: " + ", ".join(o[:100] for o in other[:5]))
            paths = sorted({urllib.parse.urlsplit(r[0]).path for r in self.requests if r[0].startswith(self.origin + "/")})
            extra = [p for p in paths if p not in self.API_PATHS]
            if extra:
                raise Failed("asked its server for more than its API: " + ", ".join(extra[:5]))
        self.check("page: asks nothing but its own server's API", origins)

        def clean():
            if self.problems:
                raise Failed("; ".join(p[:200] for p in self.problems[:5]))
        self.check("page: no console error and no uncaught exception", clean)

    def no_eos(self, body):
        """Add "ignore_eos": true to a request's body (unless --keep-eos)."""
        if not self.args.keep_eos:
            body["ignore_eos"] = True

    @staticmethod
    def body_of(request):
        """The body of a request the Fetch domain holds (given whole, or in entries when long)."""
        if "postData" in request:
            return request["postData"]
        return b"".join(base64.b64decode(e.get("bytes", "")) for e in request.get("postDataEntries", [])).decode()

    def forward_chat(self, what, change=None):
        """Pass the page's next chat request on to the server, its JSON body changed by CHANGE."""
        held = self.held_request(what)
        params = {"requestId": held["requestId"]}
        if change:
            body = json.loads(self.body_of(held["request"]))
            change(body)
            params["postData"] = base64.b64encode(json.dumps(body).encode()).decode()
        self.cdp.call("Fetch.continueRequest", params)
        return held

    def held_request(self, what):
        """Wait for the next request the Fetch domain holds."""
        deadline = time.monotonic() + 10
        while not self.paused:
            if time.monotonic() > deadline:
                raise Failed("the page sent no request for " + what)
            self.cdp.pump(0.05)
        return self.paused.pop(0)

    def answer_next_chat(self, status, content_type, body):
        """Make the page's next chat request and answer it ourselves."""
        self.watch_last_reply()
        self.type_text("A question the test answers itself.")
        self.click("#send")
        held = self.held_request("the chat")
        self.cdp.call("Fetch.fulfillRequest", {"requestId": held["requestId"], "responseCode": status,
                                               "responseHeaders": [{"name": "Content-Type", "value": content_type}],
                                               "body": base64.b64encode(body.encode()).decode()})
        self.wait(self.last_assistant("b.getAttribute('data-done') === '1'"), 10, "the bubble to end")
        return self.js(self.last_assistant("[b.getAttribute('data-finish'), b.textContent, b.querySelectorAll('*').length,"
                                           " b.classList.contains('error')]"))

    def injected_error(self):
        self.excused = True     # the browser logs "Failed to load resource: 400" for this one
        try:
            finish, text, _, is_error = self.answer_next_chat(
                400, "application/json",
                json.dumps({"error": {"message": "max_tokens is not a number (injected by the test)",
                                      "type": "invalid_request_error", "code": 400}}))
            self.cdp.pump(0.2)
        finally:
            self.excused = False
        if finish != "error" or not is_error:
            raise Failed("data-finish=%r, error class %r" % (finish, is_error))
        if "max_tokens is not a number (injected by the test)" not in text:
            raise Failed("the bubble says %r, not the server's message" % text)
        if self.js("document.getElementById('send').disabled"):
            raise Failed("#send stays disabled after the error")

    def injected_html(self):
        shown = '<b>bold</b> <img src="/x.png" onerror="window.__pwned=1"> &amp; caf\u00e9 \u4e2d\U0001F999'
        def chunk(delta, finish=None):
            return json.dumps({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 0, "model": "test",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}, ensure_ascii=False)
        # CR LF line ends, a comment line and the text in three pieces: what the page must tolerate
        events = [chunk({"role": "assistant", "content": ""}), chunk({"content": shown[:10]}),
                  chunk({"content": shown[10:40]}), chunk({"content": shown[40:]}), chunk({}, "stop"), "[DONE]"]
        body = ": a comment\r\n\r\n" + "".join("data: %s\r\n\r\n" % e for e in events)
        finish, text, elements, _ = self.answer_next_chat(200, "text/event-stream", body)
        if finish != "stop":
            raise Failed("data-finish=%r (text %r)" % (finish, text))
        if text != shown:
            raise Failed("shows %r, expected %r" % (text, shown))
        if elements or self.js("window.__pwned === 1"):
            raise Failed("the reply's HTML became elements (%d left in the bubble; its onerror ran: %s)"
                         % (elements, self.js("window.__pwned === 1")))


def devtools_page_ws(profile, proc, timeout):
    """The WebSocket URL of the browser's page: the port is in DevToolsActivePort."""
    path = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError("the browser exited with status %d" % proc.returncode)
        try:
            with open(path) as f:
                port = int(f.readline())
            break
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise RuntimeError("no DevToolsActivePort after %g s" % timeout)
            time.sleep(0.1)
    # /json/list over a plain socket (urllib would follow any http_proxy of the environment);
    # the browser keeps the connection open, so the body ends at its Content-Length
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
            data = b""
            while b"\r\n\r\n" not in data:
                got = s.recv(65536)
                if not got:
                    raise RuntimeError("DevTools: /json/list got no answer")
                data += got
            head, body = data.split(b"\r\n\r\n", 1)
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if not m:
                raise RuntimeError("DevTools: /json/list: no Content-Length")
            while len(body) < int(m.group(1)):
                got = s.recv(65536)
                if not got:
                    raise RuntimeError("DevTools: /json/list cut short")
                body += got
        pages = [t for t in json.loads(body) if t.get("type") == "page" and "id" in t]
        if pages:
            return "ws://127.0.0.1:%d/devtools/page/%s" % (port, pages[0]["id"])
        if time.monotonic() > deadline:
            raise RuntimeError("the browser has no page")
        time.sleep(0.1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="the page, e.g. http://127.0.0.1:8080/")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    ap.add_argument("--desktop", required=True, help="where to write the desktop screenshot (PNG)")
    ap.add_argument("--phone", required=True, help="where to write the phone screenshot (PNG)")
    ap.add_argument("--timeout", type=float, default=240, help="the whole run, seconds (default 240)")
    ap.add_argument("--load-timeout", type=float, default=120, help="how long the model may take to load (default 120)")
    ap.add_argument("--keep-eos", action="store_true",
                    help="pass the requests on as they are, without \"ignore_eos\" (for screenshots of a model's own replies:"
                         " a reply may then end before it is seen growing or before Stop)")
    ap.add_argument("--first-tokens", type=int, default=150, help="max_tokens of the first reply (default 150)")
    ap.add_argument("--long-tokens", type=int, default=1000, help="max_tokens of the reply that is stopped (default 1000)")
    args = ap.parse_args()

    check = PageCheck(args.url, args)

    def out_of_time(signum, frame):
        raise OutOfTime("the whole check ran past %g s" % args.timeout)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(args.timeout)))

    profile = tempfile.mkdtemp(prefix="page_check.")
    proc = ws = None
    log = open(os.path.join(profile, "..", os.path.basename(profile) + ".log"), "w+")
    try:
        proc = subprocess.Popen([args.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                 "--remote-debugging-port=0", "--user-data-dir=" + profile,
                                 "--no-first-run", "--no-default-browser-check", "--no-proxy-server",
                                 "--disable-background-networking", "--disable-component-update",
                                 "--disable-sync", "--disable-extensions", "--mute-audio", "about:blank"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        ws = WebSocket(devtools_page_ws(profile, proc, 30))
        check.run(CDP(ws, check.on_event))
    except (Exception, OutOfTime) as e:  # anything at all: report it as a failure, then clean up
        log.seek(0)
        tail = " ".join(log.read().strip().splitlines()[-2:])[:300]
        check.bad("page: the browser test ran to its end", "%s: %s%s" % (type(e).__name__, e, (" (browser: %s)" % tail) if tail else ""))
    finally:
        signal.alarm(0)
        if ws:
            try:
                ws.close()
            except OSError:
                pass
        if proc and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the browser and its helper processes
            except OSError:
                proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)
        shutil.rmtree(profile, ignore_errors=True)
    print("%d passed, %d failed" % (check.passed, check.failed))
    return 1 if check.failed or not check.passed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Chapter 9's server, from the outside: start it on a loopback port, talk to it, check.

    server_check.py BIN WORK [--quick] [--loadgen PATH] [--slow MODEL[:ARGS]] MODEL[:ARGS] ...

BIN is a chapter program (build/ch09); WORK a scratch folder. The first MODEL is the main one
(ARGS: extra server options, comma-separated, e.g. "--chat-template,zephyr"); each other model
only gets the check that a greedy chat reply equals the terminal chat's. The --slow model is one
whose replies last seconds (a long context): the checks of disconnects, limits and shutdown need
a reply still running when they act. Prints one line per
check, "ok    NAME" or "FAIL  NAME: why" (tests/lib.sh's format), and exits 1 if any failed.

Token ids and logits are compared, never text: the server's replies carry their ids with
"return_tokens", and --logits-dir writes the logits of every request (LGTS files), which must
equal the terminal program's bit for bit.

Each server's stderr is kept in WORK/server-TAG-N.err and its process id in WORK/server.pids
(tests/t_server.sh checks that none outlives the run). A sanitizer build's report in any of those
files, or in the stderr of the terminal runs and loadgen, fails the last check.
"""
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

FAILED = 0
# What a sanitizer prints when it finds something (make SANITIZE=1 or SANITIZE=thread). A report
# need not change a reply (TSan, a leak at exit), so every server's stderr and every other run's
# is searched, and main() fails a check when any holds one.
SANITIZER_MARKS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
REPORTS = []


def note_reports(where, text):
    """Remember the first sanitizer report line in @p text (a program's stderr), if any."""
    for line in (text or "").splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            REPORTS.append("%s: %s" % (where, line.strip()[:200]))
            return


def ok(name):
    print("ok    " + name, flush=True)


def bad(name, why):
    global FAILED
    FAILED += 1
    print("FAIL  %s: %s" % (name, str(why).replace("\n", " ")[:400]), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        bad(name, why)
    return cond


class Server:
    """One server process on a free loopback port, its stderr in a file."""

    def __init__(self, bin_path, model, work, args=(), wait_ready=True, tag="s"):
        self.err_path = os.path.join(work, "server-%s-%d.err" % (tag, time.monotonic_ns()))
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([bin_path, "--server", "-m", model, "--port", "0"] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.err)
        self.port = None
        self.scanned = False
        with open(os.path.join(work, "server.pids"), "a") as f:  # t_server.sh checks that none outlives the test
            f.write("%d\n" % self.proc.pid)
        try:
            self._wait_start(wait_ready)
        except Exception:
            self.stop(signal.SIGKILL, timeout=5)  # a server that failed to start must not outlive the test
            raise

    def _wait_start(self, wait_ready):
        deadline = time.time() + 30
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on http://[^:]+:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise RuntimeError("the server exited: " + self.log()[-300:])
            else:
                time.sleep(0.02)
        if self.port is None:
            raise RuntimeError("the server printed no address: " + self.log()[-300:])
        if wait_ready:
            while time.time() < deadline:
                if "[server] ready" in self.log():
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError("the server exited: " + self.log()[-300:])
                time.sleep(0.02)
            raise RuntimeError("the server did not get ready in 30 s")

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send @p sig; return the exit status, or None when it had to be killed."""
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        self.err.close()
        if not self.scanned:  # the whole stderr is there once the process has ended
            self.scanned = True
            note_reports(os.path.basename(self.err_path), self.log())
        return None if killed else self.proc.returncode

    def request(self, method, path, body=None, timeout=60, headers=None):
        """(status, headers dict, body bytes) of one request on a fresh connection."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        c.close()
        return out

    def post(self, path, body, timeout=60):
        status, _, data = self.request("POST", path, body, timeout)
        return status, json.loads(data) if data else None

    def stream(self, path, body, timeout=60, stop_after=None):
        """The events of a streamed request: a list of parsed JSON objects and "[DONE]" strings."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        events, buf = [], b""
        if r.status != 200:
            return r.status, [json.loads(r.read())]
        while True:
            piece = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not piece:
                break
            buf += piece
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                line = ev.decode()
                if not line.startswith("data: "):
                    events.append(("bad line", line))
                    continue
                payload = line[6:]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
                if stop_after is not None and len(events) >= stop_after:
                    r.close()  # the response owns the socket: this closes the connection
                    c.close()
                    return r.status, events
        c.close()
        if buf.strip():
            events.append(("trailing bytes", buf.decode(errors="replace")))
        return r.status, events

    def raw(self, data, timeout=10, read=True):
        """Send raw bytes on a new connection; the response's bytes (until the server closes)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        out = b""
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            out += b"<send failed>"
        if read:
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    out += b
            except socket.timeout:
                out += b"<timeout>"
            except ConnectionResetError:
                out += b"<reset>"
        s.close()
        return out


def read_lgts(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, version, n, vocab = struct.unpack_from("<4siii", data, 0)
    assert magic == b"LGTS" and version == 1
    tokens = list(struct.unpack_from("<%di" % n, data, 16))
    off = 16 + 4 * n
    rows = [data[off + 4 * vocab * i: off + 4 * vocab * (i + 1)] for i in range(n)]
    return tokens, rows


def chat(content, **kw):
    body = {"model": "m", "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 12,
            "return_tokens": True}
    body.update(kw)
    return body


def status_of(raw):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    return int(m.group(1)) if m else None


def error_body(raw):
    try:
        return json.loads(raw.split(b"\r\n\r\n", 1)[1])
    except Exception:
        return None


def is_openai_error(obj, code):
    e = obj.get("error") if isinstance(obj, dict) else None
    return isinstance(e, dict) and e.get("code") == code and isinstance(e.get("message"), str) and e["message"] and \
        isinstance(e.get("type"), str)


# ---------------------------------------------------------------------------------------------
# The checks

def check_endpoints(s, name):
    st, h, body = s.request("GET", "/")
    check("%s: GET / is the page" % name, st == 200 and h.get("content-type", "").startswith("text/html")
          and b"<html" in body.lower() and b"http://" not in body and b"https://" not in body,
          "status %d, %s, %d bytes (the page must not name another origin)" % (st, h.get("content-type"), len(body)))
    st, _, body = s.request("GET", "/health")
    check("%s: GET /health" % name, st == 200 and json.loads(body) == {"status": "ok"}, "%d %r" % (st, body))
    st, _, body = s.request("GET", "/v1/models")
    models = json.loads(body)
    check("%s: GET /v1/models" % name, st == 200 and models.get("object") == "list" and
          models["data"][0]["object"] == "model" and models["data"][0]["id"], "%d %r" % (st, body))
    st, r = s.post("/v1/chat/completions", chat("Hello there"))
    good = st == 200 and r["object"] == "chat.completion" and r["id"].startswith("chatcmpl-") and \
        r["choices"][0]["message"]["role"] == "assistant" and r["choices"][0]["finish_reason"] in ("stop", "length") and \
        r["usage"]["completion_tokens"] == len(r["choices"][0]["tokens"]) and \
        r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
    check("%s: POST /v1/chat/completions" % name, good, "%d %r" % (st, r))
    st, rn = s.post("/v1/chat/completions", chat("Hello there", max_tokens=4, stream=None, stream_options=None, stop=None,
                                                 seed=None, top_k=None, user=None, logprobs=None))
    check("%s: a field that is null counts as not given" % name, st == 200 and len(rn["choices"][0]["tokens"]) <= 4 and
          rn["choices"][0]["tokens"] == r["choices"][0]["tokens"][:len(rn["choices"][0]["tokens"])], "%d %r" % (st, rn))
    st, c = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "return_tokens": True})
    check("%s: POST /v1/completions" % name, st == 200 and c["object"] == "text_completion" and
          isinstance(c["choices"][0]["text"], str) and len(c["choices"][0]["tokens"]) == c["usage"]["completion_tokens"],
          "%d %r" % (st, c))
    st, c2 = s.post("/v1/completions", {"prompt": [1, 2, 3][: 1] + c["choices"][0]["tokens"][:2], "max_tokens": 2,
                                        "temperature": 0})
    check("%s: /v1/completions takes token ids" % name, st == 200 and c2["usage"]["prompt_tokens"] == 3, "%d %r" % (st, c2))
    return r


def stream_problems(ev, full, include_usage):
    """What is wrong with a chat stream: role, content..., finish (+ usage), [usage chunk,] [DONE]."""
    tail = 3 if include_usage else 2  # the finish chunk, the usage chunk when asked for, [DONE]
    if len(ev) < tail + 2:
        return ["%d events" % len(ev)]
    why = []
    first, finish, done = ev[0], ev[-tail], ev[-1]
    if not isinstance(first, dict) or first["choices"][0]["delta"] != {"role": "assistant", "content": ""}:
        why.append("first chunk %r" % (first,))
    mids = ev[1:-tail]
    if any(not isinstance(e, dict) or e.get("object") != "chat.completion.chunk" or len(e.get("choices", [])) != 1 or
           e["choices"][0]["finish_reason"] is not None or "content" not in e["choices"][0]["delta"] for e in mids):
        why.append("a content chunk is malformed")
    text = "".join(e["choices"][0]["delta"]["content"] for e in mids if isinstance(e, dict) and e.get("choices"))
    if text != full["choices"][0]["message"]["content"]:
        why.append("streamed text %r != %r" % (text, full["choices"][0]["message"]["content"]))
    # a chunk per token, as OpenAI's API streams: exactly so when no token ends inside a character
    # (an ASCII reply; a multi-byte character's first bytes would wait for the next token's)
    if text.isascii() and len(mids) != full["usage"]["completion_tokens"]:
        why.append("%d content chunks for %d tokens" % (len(mids), full["usage"]["completion_tokens"]))
    if not isinstance(finish, dict) or finish.get("choices", [{}])[0].get("finish_reason") != full["choices"][0]["finish_reason"] \
            or finish["choices"][0].get("delta") != {}:
        why.append("finish chunk %r" % (finish,))
    # the usage: a chunk of its own with "choices": [] (OpenAI's include_usage), else on the finish chunk
    usage = ev[-2] if include_usage else finish
    if not isinstance(usage, dict) or (usage.get("choices") != []) != (not include_usage) or \
            (usage.get("usage") or {}).get("completion_tokens") != full["usage"]["completion_tokens"] or \
            "predicted_per_second" not in usage.get("timings", {}):
        why.append("usage %r" % (usage,))
    if include_usage and any(not isinstance(e, dict) or "usage" not in e or e["usage"] is not None for e in ev[:-2]):
        why.append("with include_usage every other chunk must say \"usage\": null")
    if not include_usage and any(isinstance(e, dict) and e.get("choices") == [] for e in ev):
        why.append("a chunk without choices, not asked for (a client reading choices[0] would fail)")
    if done != "[DONE]":
        why.append("last event %r" % (done,))
    if len({e["id"] for e in ev if isinstance(e, dict)}) != 1:
        why.append("the chunks' ids differ")
    return why


def check_stream(s, name, full=None):
    """Chunk order: role, content..., finish, usage, [DONE] (no usage chunk when include_usage is
    false); the text and count equal the whole reply's."""
    if full is None:
        st, full = s.post("/v1/chat/completions", chat("Hello there"))
        if st != 200:
            return bad("%s: a stream is role, content, finish, usage with no choices, [DONE]" % name,
                       "status %d %r" % (st, full))
    st, ev = s.stream("/v1/chat/completions", chat("Hello there", stream=True))
    why = ["status %d" % st] if st != 200 else stream_problems(ev, full, True)
    check("%s: a stream is role, content, finish, usage with no choices, [DONE]" % name, not why, "; ".join(why))
    st, ev = s.stream("/v1/chat/completions", chat("Hello there", stream=True, stream_options={"include_usage": True}))
    why = ["status %d" % st] if st != 200 else stream_problems(ev, full, True)
    check("%s: include_usage true is the same stream" % name, not why, "; ".join(why))
    st, ev = s.stream("/v1/chat/completions", chat("Hello there", stream=True, stream_options={"include_usage": False}))
    why = ["status %d" % st] if st != 200 else stream_problems(ev, full, False)
    check("%s: include_usage false: the usage on the finish chunk, no usage chunk" % name, not why, "; ".join(why))
    st, ev = s.stream("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "stream": True})
    check("%s: a completion streams too" % name, st == 200 and ev[-1] == "[DONE]" and
          ev[-3]["choices"][0]["finish_reason"] in ("stop", "length") and ev[0]["object"] == "text_completion" and
          ev[-2].get("choices") == [] and ev[-2].get("usage", {}).get("completion_tokens", 0) >= 1, "%d %r" % (st, ev[-3:]))


def terminal_ids(bin_path, model, args, text, n):
    """The terminal chat's ids (-cnv, greedy) for one user message: the whole conversation."""
    r = subprocess.run([bin_path, "-m", model, "-cnv", "-p", text, "-n", str(n), "--temp", "0", "--ids", "-t", "2"] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    note_reports("the terminal chat", r.stderr)
    lines = [l for l in r.stdout.strip().split("\n") if re.fullmatch(r"[\d ]+", l.strip())]
    return [int(x) for x in lines[-1].split()] if lines else None


def teacher_forced(bin_path, model, ids, work):
    out = os.path.join(work, "tf-%d.lgts" % time.monotonic_ns())
    r = subprocess.run([bin_path, "-m", model, "--logits", out, "--tokens", " ".join(map(str, ids)), "-t", "2"],
                       capture_output=True, text=True, timeout=120)
    note_reports("teacher forcing", r.stderr)
    r.check_returncode()
    return read_lgts(out)


def check_same_as_terminal(bin_path, model, args, name, s, logits_dir, work):
    """Greedy chat: the server's ids = the terminal chat's; its logits = teacher forcing's, bit for bit."""
    text = "Tell me a story about a cat"
    st, r = s.post("/v1/chat/completions", chat(text, max_tokens=16))
    if st != 200:
        return bad("%s: a greedy chat reply equals the terminal chat's" % name, "status %d %r" % (st, r))
    got = r["choices"][0]["tokens"]
    n_prompt = r["usage"]["prompt_tokens"]
    term = terminal_ids(bin_path, model, args, text, 16)
    if term is None:
        return bad("%s: a greedy chat reply equals the terminal chat's" % name, "the terminal printed no ids")
    # the terminal's conversation: the prompt, the reply, and (if it ended by itself) its end-of-turn id
    check("%s: a greedy chat reply equals the terminal chat's" % name, term[n_prompt:n_prompt + len(got)] == got and
          len(term) >= n_prompt + len(got), "server %s, terminal %s" % (got, term[n_prompt:]))
    if logits_dir is None:
        return
    number = r["id"].split("-")[1]
    fed, rows = read_lgts(os.path.join(logits_dir, number + ".lgts"))
    tf_tokens, tf_rows = teacher_forced(bin_path, model, term[:n_prompt] + got[:-1], work)
    same = len(rows) == len(got) and all(rows[k] == tf_rows[n_prompt - 1 + k] for k in range(len(rows)))
    check("%s: the server's logits equal teacher forcing's, bit for bit" % name, same,
          "%d rows, %d expected" % (len(rows), len(got)))


def check_concurrent(s, name, logits_dir, n=8):
    """8 different greedy requests at once give the tokens and logits each gives alone, bit for bit."""
    prompts = ["Story number %d: once there was a %s" % (i, w) for i, w in
               enumerate(["dog", "cat", "bird", "tree", "boat", "king", "star", "frog"][:n])]
    bodies = [chat(p, max_tokens=10 + 3 * i) for i, p in enumerate(prompts)]
    alone = [s.post("/v1/chat/completions", b)[1] for b in bodies]
    together = [None] * n
    def run(i):
        together[i] = s.post("/v1/chat/completions", bodies[i])[1]
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    same_ids = all(a and t and a["choices"][0]["tokens"] == t["choices"][0]["tokens"] for a, t in zip(alone, together))
    check("%s: %d concurrent greedy requests give their single runs' tokens" % (name, n), same_ids,
          [(a["choices"][0]["tokens"], t and t["choices"][0]["tokens"]) for a, t in zip(alone, together) if a][:2])
    if logits_dir:
        diff = []
        for a, t in zip(alone, together):
            la = read_lgts(os.path.join(logits_dir, a["id"].split("-")[1] + ".lgts"))
            lt = read_lgts(os.path.join(logits_dir, t["id"].split("-")[1] + ".lgts"))
            if la != lt:
                diff.append(a["id"])
        check("%s: ... and their logits, bit for bit" % name, not diff, "differ: %s" % diff)
    log = s.log()
    batched = len(set(re.findall(r"slot (\d+):", log)))
    check("%s: concurrent requests ran in different slots" % name, batched >= min(n, 2), "slots used: %d" % batched)


def check_prefix_reuse(s, bin_path, model, args, name):
    """A follow-up turn reuses its history's cache, and its reply is still the greedy one."""
    history = [{"role": "user", "content": "Tell me about the sea and the boats on it, and the fish in it."}]
    st, r1 = s.post("/v1/chat/completions", {"messages": history, "temperature": 0, "max_tokens": 12})
    if st != 200:
        return bad("%s: prefix reuse" % name, "status %d" % st)
    history += [{"role": "assistant", "content": r1["choices"][0]["message"]["content"]},
                {"role": "user", "content": "And then?"}]
    # another user in between, with nothing in common with any cache: it must take another slot
    # (the least recently used), not the one that holds the history (the first free one, say)
    s.post("/v1/completions", {"prompt": [0] * 3, "max_tokens": 1, "temperature": 0})
    st, r2 = s.post("/v1/chat/completions", {"messages": history, "temperature": 0, "max_tokens": 12, "return_tokens": True})
    t = r2.get("timings", {})
    check("%s: a follow-up turn reuses the cached prefix" % name,
          st == 200 and t.get("cache_n", 0) >= r1["usage"]["prompt_tokens"] - 1 and
          t["prompt_n"] == r2["usage"]["prompt_tokens"] - t["cache_n"],
          "cache_n %s of %s prompt tokens (the first turn had %d)" % (t.get("cache_n"), r2["usage"]["prompt_tokens"],
                                                                     r1["usage"]["prompt_tokens"]))
    # the same request on a fresh completion of the same ids, nothing reused: the same tokens
    st, r3 = s.post("/v1/completions", {"prompt": [0] * 3, "max_tokens": 1, "temperature": 0})  # moves nothing; a fence
    fresh = Server(bin_path, model, os.path.dirname(s.err_path), args, tag="fresh")
    try:
        st, r4 = fresh.post("/v1/chat/completions", {"messages": history, "temperature": 0, "max_tokens": 12,
                                                     "return_tokens": True})
    finally:
        fresh.stop()
    check("%s: ... and gives the tokens of a fresh server" % name, r4["timings"]["cache_n"] == 0 and
          r4["choices"][0]["tokens"] == r2["choices"][0]["tokens"],
          "%s vs %s" % (r4["choices"][0]["tokens"], r2["choices"][0]["tokens"]))


def check_bad_input(s, name, max_body):
    """Malformed HTTP, bad JSON, wrong types, unknown fields and routes: an OpenAI error each."""
    cases = [
        ("bad JSON", "POST", "/v1/chat/completions", b'{"messages": [', 400),
        ("JSON that is not an object", "POST", "/v1/chat/completions", b'[1,2]', 400),
        ("a wrong type", "POST", "/v1/chat/completions", json.dumps(chat("hi", temperature="hot")).encode(), 400),
        ("an unknown field", "POST", "/v1/chat/completions", json.dumps(chat("hi", best_of=2)).encode(), 400),
        ("an out-of-range value", "POST", "/v1/chat/completions", json.dumps(chat("hi", top_p=1.5)).encode(), 400),
        ("no messages", "POST", "/v1/chat/completions", b'{"model":"m"}', 400),
        ("a bad role", "POST", "/v1/chat/completions", b'{"messages":[{"role":"robot","content":"x"}]}', 400),
        ("a message without content", "POST", "/v1/chat/completions", b'{"messages":[{"role":"user"}]}', 400),
        ("a bad stop", "POST", "/v1/chat/completions", json.dumps(chat("hi", stop=[1])).encode(), 400),
        ("n other than 1", "POST", "/v1/chat/completions", json.dumps(chat("hi", n=2)).encode(), 400),
        ("a prompt of bad ids", "POST", "/v1/completions", b'{"prompt":[1,-4]}', 400),
        ("invalid UTF-8", "POST", "/v1/completions", b'{"prompt":"\xff\xfe"}', 400),
        ("a prompt longer than the context", "POST", "/v1/completions",
         json.dumps({"prompt": "word " * 5000}).encode(), 400),
        ("an unknown route", "GET", "/v2/nothing", None, 404),
        ("GET on a POST route", "GET", "/v1/chat/completions", None, 405),
        ("POST on a GET route", "POST", "/v1/models", b"{}", 405),
    ]
    for what, method, path, body, want in cases:
        st, _, data = s.request(method, path, body)
        try:
            obj = json.loads(data)
        except Exception:
            obj = None
        check("%s: %s gets %d with an OpenAI error" % (name, what, want), st == want and is_openai_error(obj, want),
              "status %d, %r" % (st, data[:200]))
    raw_cases = [
        ("a garbage request line", b"HELLO\r\n\r\n", 400),
        ("HTTP/2", b"GET / HTTP/2.0\r\n\r\n", 505),
        ("a header without a colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400),
        ("a chunked body", b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
        ("a body over --max-body", b"POST /v1/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (max_body + 1), 413),
        ("a head over 8 KiB", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        ("a bad Content-Length", b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    ]
    for what, data, want in raw_cases:
        resp = s.raw(data)
        check("%s: %s gets %d" % (name, what, want), status_of(resp) == want and is_openai_error(error_body(resp), want),
              resp[:200])
    # keep-alive: two requests on one connection, pipelined
    resp = s.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check("%s: two pipelined requests on one connection" % name, resp.count(b"HTTP/1.1 200") == 2, resp[:300])
    # Expect: 100-continue (curl sends it before large bodies)
    body = json.dumps({"prompt": "Once", "max_tokens": 2, "temperature": 0}).encode()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
                 % len(body))
    first = sock.recv(100)
    sock.sendall(body)
    rest = b""
    while True:
        b = sock.recv(65536)
        if not b:
            break
        rest += b
    sock.close()
    check("%s: Expect: 100-continue is answered" % name, first.startswith(b"HTTP/1.1 100") and b"HTTP/1.1 200" in first + rest,
          (first + rest)[:200])


def check_options(bin_path, model, name):
    """Options the server refuses at once, before it listens."""
    r = subprocess.run([bin_path, "--server", "-m", model, "--port", "0", "-np", "4", "-b", "2"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    note_reports("the server with -b 2 -np 4", r.stderr)
    check("%s: -b below -np is refused (a slot would wait for rows forever)" % name, r.returncode != 0 and "-b 2" in r.stderr
          and "listening" not in r.stderr, "exit %d: %s" % (r.returncode, r.stderr[-200:]))


def check_disconnect(bin_path, model, args, work, name):
    """A client that leaves mid-stream frees its slot at once: the next request starts without waiting."""
    s = Server(bin_path, model, work, args + ["-np", "1"], tag="gone")
    try:
        st, ev = s.stream("/v1/chat/completions", chat("Go on and on", max_tokens=100000, ignore_eos=True, stream=True),
                          stop_after=3)
        t0 = time.time()
        st2, r = s.post("/v1/chat/completions", chat("Hi", max_tokens=2), timeout=30)
        waited = time.time() - t0
        check("%s: a client that leaves frees its slot at once" % name, st2 == 200 and waited < 5 and
              re.search(r"#1 slot 0: .*\(cancelled\)", s.log()), "status %d after %.1f s; %s" % (st2, waited, s.log()[-300:]))
    finally:
        s.stop()


def check_limits(bin_path, model, args, work, name):
    """--max-connections, --max-queue and --timeout, on small limits."""
    s = Server(bin_path, model, work, args + ["-np", "1", "--max-queue", "1", "--max-connections", "4", "--timeout", "2"],
               tag="limits")
    try:
        long_body = chat("Go on", max_tokens=100000, ignore_eos=True)
        results = {}
        def run(key):
            try:
                results[key] = s.post("/v1/chat/completions", long_body, timeout=30)
            except Exception as e:
                results[key] = (None, repr(e))
        t1 = threading.Thread(target=run, args=("first",))
        t1.start()
        time.sleep(0.4)  # the first holds the slot
        t2 = threading.Thread(target=run, args=("queued",))
        t2.start()
        time.sleep(0.4)  # the second waits in the queue
        st, r = s.post("/v1/chat/completions", chat("Hi"), timeout=30)
        check("%s: a request beyond --max-queue gets 503" % name, st == 503 and is_openai_error(r, 503), "%d %r" % (st, r))
        t1.join(30)
        t2.join(30)
        st1, r1 = results.get("first", (None, None))
        check("%s: a request past --timeout gets 408" % name, st1 == 408 and is_openai_error(r1, 408), "%r %r" % (st1, r1))
        st2, r2 = results.get("queued", (None, None))
        check("%s: a queued request waits for the slot (then times out here)" % name, st2 == 408, "%r %r" % (st2, r2))
        idle = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(4)]
        time.sleep(0.3)
        resp = s.raw(b"GET /health HTTP/1.1\r\n\r\n")
        check("%s: a connection beyond --max-connections gets 503" % name, status_of(resp) == 503, resp[:200])
        for c in idle:
            c.close()
        time.sleep(0.3)
        st, _, _ = s.request("GET", "/health")
        check("%s: ... and connections are taken again once others close" % name, st == 200, "status %d" % st)
        st, ev = s.stream("/v1/chat/completions", dict(long_body, stream=True), timeout=30)
        check("%s: a stream past --timeout ends with an error event" % name, st == 200 and ev and
              is_openai_error(ev[-1], 408), "%d %r" % (st, ev[-2:]))
    finally:
        s.stop()


def check_loading(bin_path, model, args, work, name):
    s = Server(bin_path, model, work, args + ["--load-delay", "1500"], wait_ready=False, tag="load")
    try:
        st, _, body = s.request("GET", "/health")
        st2, r = s.post("/v1/chat/completions", chat("Hi"))
        st3, _, _ = s.request("GET", "/v1/models")  # it tells the model's context: not known yet
        check("%s: /health, completions and /v1/models are 503 while the model loads" % name,
              st == 503 and st2 == 503 and st3 == 503, "%d %r; %d; %d" % (st, body, st2, st3))
        deadline = time.time() + 30
        while time.time() < deadline and s.request("GET", "/health")[0] != 200:
            time.sleep(0.05)
        st, _, body = s.request("GET", "/health")
        check("%s: ... and 200 once it is ready" % name, st == 200 and json.loads(body) == {"status": "ok"}, "%d" % st)
    finally:
        s.stop()


def check_shutdown(bin_path, model, args, work, name):
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = Server(bin_path, model, work, args + ["-np", "2"], tag="stop")
        results = []
        def run():
            try:
                results.append(s.stream("/v1/chat/completions", chat("Go", max_tokens=100000, ignore_eos=True, stream=True),
                                        timeout=30))
            except Exception as e:
                results.append(("exception", repr(e)))
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.5)
        t0 = time.time()
        rc = s.stop(sig, timeout=10)
        t.join(15)
        check("%s: %s stops the server cleanly, mid-stream" % (name, signal.Signals(sig).name),
              rc == 0 and time.time() - t0 < 5 and "[server] stopped" in s.log() and results and not t.is_alive(),
              "exit %r after %.1f s; %s" % (rc, time.time() - t0, s.log()[-200:]))


def check_stop_strings(s, name):
    """A stop string ends the reply before it; a stream never sends a byte of it, even one that
    spans many tokens (its first bytes come steps before the rest, and must wait)."""
    body = {"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0, "stream": True}
    st, ev = s.stream("/v1/completions", body)
    pieces = [e["choices"][0]["text"] for e in ev if isinstance(e, dict) and e.get("choices") and e["choices"][0]["text"]]
    text = "".join(pieces)
    # the longest run of tokens whose text is ASCII (a byte token's is not)
    runs, run = [], []
    for p in pieces:
        run = run + [p] if p.isascii() else []
        runs.append(run)
    run = max(runs, key=len)
    if len(run) < 5:
        return bad("%s: a stop string ends the reply before it" % name, "no 5 ASCII tokens in a row in %r" % pieces)
    # from the last byte of the run's 1st token to the first of its last: it spans the tokens between
    stop = (run[0][-1] + "".join(run[1:-1]) + run[-1][:1])[:256]
    want = text[: text.find(stop)]
    st, r2 = s.post("/v1/completions", dict(body, stream=False, stop=[stop]))
    check("%s: a stop string ends the reply before it" % name, st == 200 and r2["choices"][0]["text"] == want and
          r2["choices"][0]["finish_reason"] == "stop", "%r vs %r" % (r2["choices"][0]["text"], want))
    st, ev = s.stream("/v1/completions", dict(body, stop=["no such words", stop]))
    streamed = "".join(e["choices"][0]["text"] for e in ev if isinstance(e, dict) and e.get("choices"))
    check("%s: ... in a stream too, never sent" % name, streamed == want and
          ev[-3]["choices"][0]["finish_reason"] == "stop" and ev[-2].get("choices") == [], "%r vs %r" % (streamed, want))


def check_seeded(s, name):
    body = chat("Hello", temperature=0.9, seed=1234, max_tokens=16)
    a = s.post("/v1/chat/completions", body)[1]["choices"][0]["tokens"]
    b = s.post("/v1/chat/completions", body)[1]["choices"][0]["tokens"]
    check("%s: a seeded sampled request repeats" % name, a == b, "%s vs %s" % (a, b))


def check_load(loadgen, s, name, quick):
    clients, requests = (16, 5) if quick else (16, 20)
    t0 = time.time()
    r = subprocess.run([loadgen, "--port", str(s.port), "--clients", str(clients), "--requests", str(requests),
                        "--max-tokens", "8", "--vary", "--timeout", "60", "--prompt", "Tell me a story"], capture_output=True, text=True, timeout=300)
    note_reports("loadgen", r.stderr)
    check("%s: %d clients x %d requests, nothing lost, no error" % (name, clients, requests), r.returncode == 0 and
          time.time() - t0 < 60, "exit %d after %.0f s: %s" % (r.returncode, time.time() - t0, (r.stdout + r.stderr)[-300:]))


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    args = [a for a in args if a != "--quick"]
    loadgen = slow = None
    if "--loadgen" in args:
        i = args.index("--loadgen")
        loadgen = args[i + 1]
        del args[i:i + 2]
    if "--slow" in args:
        i = args.index("--slow")
        slow = args[i + 1]
        del args[i:i + 2]
    bin_path, work, models = args[0], args[1], args[2:]
    os.makedirs(work, exist_ok=True)
    first = True
    for spec in models:
        model, _, extra = spec.partition(":")
        extra = [a for a in extra.split(",") if a]
        name = os.path.basename(model).replace(".gguf", "")
        logits_dir = os.path.join(work, "logits-" + name)
        os.makedirs(logits_dir, exist_ok=True)
        try:
            s = Server(bin_path, model, work, extra + ["-np", "8", "-c", "1024", "-t", "2", "--logits-dir", logits_dir,
                                                     "--max-body", "65536"], tag=name)
        except Exception as e:
            bad("%s: the server starts" % name, e)
            continue
        try:
            check_same_as_terminal(bin_path, model, extra, name, s, logits_dir, work)
            if not first:  # each vocabulary's text: a stream must cut it where the whole reply has it
                check_stream(s, name)
            if first:
                full = check_endpoints(s, name)
                check_stream(s, name, full)
                check_concurrent(s, name, logits_dir)
                check_prefix_reuse(s, bin_path, model, extra + ["-c", "1024", "-t", "2"], name)
                check_stop_strings(s, name)
                check_seeded(s, name)
                check_bad_input(s, name, 65536)
                if loadgen:
                    check_load(loadgen, s, name, quick)
        except Exception as e:
            import traceback
            bad("%s: the checks ran to the end" % name, traceback.format_exc()[-400:])
        finally:
            rc = s.stop()
            if rc != 0:
                bad("%s: the server exits 0 on SIGTERM" % name, "exit %r; %s" % (rc, s.log()[-300:]))
        if first:
            try:
                check_options(bin_path, model, name)
                check_loading(bin_path, model, extra + ["-t", "2"], work, name)
            except Exception:
                import traceback
                bad("%s: check_loading ran to the end" % name, traceback.format_exc()[-400:])
        if first and slow:
            slow_model, _, slow_extra = slow.partition(":")
            base = [a for a in slow_extra.split(",") if a] + ["-t", "1"]
            slow_name = os.path.basename(slow_model).replace(".gguf", "")
            for f in (check_disconnect, check_limits, check_shutdown):
                try:
                    f(bin_path, slow_model, base, work, slow_name)
                except Exception:
                    import traceback
                    bad("%s: %s ran to the end" % (slow_name, f.__name__), traceback.format_exc()[-400:])
        first = False
    check("no sanitizer report from any server, terminal run or loadgen (ASan, UBSan, TSan)", not REPORTS,
          "%d: %s" % (len(REPORTS), "; ".join(REPORTS[:3])))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

# tests/t_page.sh — the server's chat page: src/server_page.html and the C string made from it.
#
#  1. src/server_page.h, committed, is what tools/embed_page.sh writes from the page now;
#  2. compiled (-std=c11 -Wall -Wextra -Werror), its string is the page, byte for byte;
#  3. the page is plain ASCII and names no other site (no "://" anywhere in it);
#  4. the page in headless Chromium against the real server (tests/page_check.py, which speaks
#     the DevTools protocol itself): the model's name, a reply that streams in, its speed, Enter
#     and Stop, the conversation in the next request, a phone-sized layout, an error and a reply
#     full of HTML fed by the test, only the server's own API asked, no console error; and the
#     slot of the stopped reply is freed (the server logs it as cancelled). The model is made
#     here: one whose replies take seconds (4096 positions), so that Stop has a reply to stop.
#     Skipped with QUICK=1 (the sanitizer stages): it checks the page, which they do not change.
#
# Sourced by the test runner (see tests/lib.sh) with BUILD, SHARED, QUICK and TMP set.

page_test_header() {
    local name="page: src/server_page.h is what tools/embed_page.sh writes"
    if ! bash tools/embed_page.sh src/server_page.html >"$TMP/page.h" 2>"$TMP/page.err"; then
        bad "$name" "tools/embed_page.sh failed: $(head -c 200 "$TMP/page.err")"
    elif ! cmp -s "$TMP/page.h" src/server_page.h; then
        bad "$name" "they differ (run: bash tools/embed_page.sh -o src/server_page.h): $(diff src/server_page.h "$TMP/page.h" | head -n 3 | tr '\n' ' ' | head -c 200)"
    else
        ok "$name"
    fi
    bash tools/embed_page.sh -o "$TMP/page2.h" src/server_page.html 2>/dev/null
    if cmp -s "$TMP/page.h" "$TMP/page2.h"; then
        ok "page: tools/embed_page.sh writes the same header twice, with -o or to stdout"
    else
        bad "page: tools/embed_page.sh writes the same header twice, with -o or to stdout" "two runs differ"
    fi
}

page_test_string() {
    local name="page: the string of src/server_page.h is the page, byte for byte"
    printf '%s\n' '#include <stdio.h>' '#include "server_page.h"' \
        'int main(void) { return fwrite(server_page_html, 1, server_page_len, stdout) != server_page_len; }' \
        >"$TMP/page_dump.c"
    if ! ${CC:-cc} -std=c11 -Wall -Wextra -Werror -Isrc -o "$TMP/page_dump" "$TMP/page_dump.c" 2>"$TMP/page_cc.err"; then
        bad "$name" "it does not compile: $(head -n 2 "$TMP/page_cc.err" | tr '\n' ' ')"
    elif ! "$TMP/page_dump" | cmp -s - src/server_page.html; then
        bad "$name" "it differs from src/server_page.html"
    else
        ok "$name"
    fi
}

page_test_source() {
    local name="page: plain ASCII, and no other site named"
    if LC_ALL=C grep -n "$(printf '[^\t -~]')" src/server_page.html >"$TMP/page_nonascii"; then
        bad "$name" "not ASCII at line $(head -n 1 "$TMP/page_nonascii" | cut -d: -f1) (write an entity or a \\u escape)"
    elif grep -n '://' src/server_page.html >"$TMP/page_urls"; then
        bad "$name" "a URL at line $(head -n 1 "$TMP/page_urls" | cut -c 1-120)"
    else
        ok "$name"
    fi
}

# page_test_browser: tests/page_check.py against the newest chapter's server
page_test_browser() {
    local name="page: in headless Chromium against the server" dir=$TMP/t_page ch bin browser host pid port
    ch=$(chapters reads=gguf | tail -n 1)
    bin=$BUILD/ch$ch
    browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
    if [ "$QUICK" = 1 ]; then skip "$name" "QUICK=1: checked once, in the main (gcc) stage"; return; fi
    if [ ! -x "$bin" ]; then skip "$name" "$bin is missing"; return; fi
    if [ -z "$browser" ]; then skip "$name" "chromium is not installed (Debian: apt-get install chromium)"; return; fi
    if ! command -v python3 >/dev/null; then skip "$name" "python3 is not installed"; return; fi
    mkdir -p "$dir"
    host=${HOST_BUILD:-$BUILD}
    if ! "$host/mksynth" --dim 512 --hidden 1536 --layers 8 --heads 8 --kv-heads 8 --vocab 512 --seq-len 4096 \
            -o "$dir/slow.bin" --tokenizer-out "$dir/tok.bin" >/dev/null 2>&1 ||
        ! "$host/gguf_convert" -m "$dir/slow.bin" -z "$dir/tok.bin" -o "$dir/slow-q8_0.gguf" -t q8_0 >/dev/null 2>&1; then
        bad "$name" "the model: mksynth or gguf_convert failed"
        return
    fi
    rm -f "$dir/slow.bin"
    "$bin" --server -m "$dir/slow-q8_0.gguf" --chat-template zephyr --host 127.0.0.1 --port 0 -np 2 -t 1 \
        </dev/null >"$dir/server.out" 2>"$dir/server.err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$dir/server.err" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        bad "$name" "the server did not start: $(head -c 300 "$dir/server.err" | tr '\n' ' ')"
        return
    fi
    timeout 300 python3 tests/page_check.py "http://127.0.0.1:$port/" --chromium "$browser" \
        --desktop "$dir/desktop.png" --phone "$dir/phone.png" >"$dir/out" 2>"$dir/err"
    relay_results "" "$dir/out" "$dir/err" $? "$name"
    if grep -q 'generated (cancelled)' "$dir/server.err"; then
        ok "page: Stop frees the server's slot (the server logs the reply as cancelled)"
    else
        bad "page: Stop frees the server's slot (the server logs the reply as cancelled)" \
            "no cancelled request in its log: $(tail -n 3 "$dir/server.err" | tr '\n' ' ' | head -c 300)"
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$dir/slow-q8_0.gguf"
}

page_test_header
page_test_string
page_test_source
page_test_browser

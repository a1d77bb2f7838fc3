# Chapter 9's server (src/server.c), from the outside: tests/server_check.py starts it on a
# loopback port and talks to it (python3's standard library only). It checks:
#  1. every endpoint (/, /health, /v1/models, /v1/chat/completions, /v1/completions), a stream's
#     chunks in order (role, a chunk per token, finish with the usage, [DONE]; with include_usage a
#     usage chunk with no choices before [DONE]) with the whole reply's text, on every model;
#  2. a greedy chat reply = the terminal chat's (-cnv) ids, and its logits = teacher forcing's
#     bit for bit (--logits-dir), in every template family: chatml (qwen2, from the file), llama3
#     (from the file), zephyr and llama2 (--chat-template, on an SPM vocabulary), and the tiny
#     model's chatml (a character split between two tokens);
#  3. 8 concurrent greedy requests = their single runs, ids and logits bit for bit; a follow-up
#     turn reuses the cached prefix and gives a fresh server's tokens; stop strings; seeds;
#  4. bad input: malformed HTTP, bad JSON, wrong types, unknown fields, routes and methods, a body
#     over --max-body, a chunked body, a long head: each its status and an OpenAI error object;
#     pipelining and Expect: 100-continue;
#  5. on a model whose replies take seconds (made here, 4096 positions): a client that leaves frees
#     its slot at once; --max-queue, --max-connections and --timeout; SIGTERM and SIGINT stop it
#     mid-stream with status 0; /health is 503 while loading (--load-delay);
#  6. load: 16 clients x 20 requests through build/loadgen, nothing lost, within a minute
#     (QUICK=1, the sanitizer pass: 16 x 5);
#  7. bad flags and model files: one error line each, status 1;
#  8. no sanitizer report (ASan, UBSan, TSan: make SANITIZE=1 or thread) in any server's stderr
#     or the other programs' it ran, and no server it started outlives it.
# The chapter: the newest (SERVER_CH=NN picks another GGUF chapter: they all serve, one sequence
# at a time before chapter 9).
SV=$TMP/t_server
mkdir -p "$SV"
SV_CH=${SERVER_CH:-$(chapters reads=gguf | tail -n 1)}
SB=$BUILD/ch$SV_CH
if [ ! -x "$SB" ]; then
    skip "server" "$SB is missing"
elif ! command -v python3 >/dev/null; then
    skip "server" "python3 is not installed (Debian: apt-get install python3)"
else
    # bad flags and files: one error line, status 1, before it listens (expect_error); a file that
    # is only found wrong while loading: status 1 and one error line naming it, after the line that
    # says where it listens (it listens first, so that /health can answer 503 while it loads)
    sv_good=$SHARED/models/gguf/families/qwen2-syn-q8_0.gguf
    [ -e "$sv_good" ] || sv_good=$(tiny_gguf q8_0)
    expect_error "server: a missing model file" "$SB" --server -m "$SV/none.gguf" --port 0
    expect_error "server: a folder as the model" "$SB" --server -m "$SV" --port 0
    expect_error "server: no model" "$SB" --server --port 0
    expect_error "server: --port x" "$SB" --server -m "$sv_good" --port x
    expect_error "server: --port 70000" "$SB" --server -m "$sv_good" --port 70000
    expect_error "server: -np 0" "$SB" --server -m "$sv_good" -np 0 --port 0
    expect_error "server: --timeout without a value" "$SB" --server -m "$sv_good" --timeout
    expect_error "server: an unknown option" "$SB" --server -m "$sv_good" --bogus --port 0
    expect_error "server: an unknown --chat-template" "$SB" --server -m "$sv_good" --chat-template nope --port 0
    expect_error "server: a --host that is no address" "$SB" --server -m "$sv_good" --host 256.1.1.1 --port 0
    printf 'GGUF\003\000\000\000' >"$SV/short.gguf"
    timeout 30 "$SB" --server -m "$SV/short.gguf" --port 0 >"$SV/load.out" 2>"$SV/load.err" </dev/null
    rc=$?
    if [ "$rc" -eq 1 ] && [ "$(grep -c '^error: ' "$SV/load.err")" -eq 1 ] && grep -q "^error: $SV/short.gguf: " "$SV/load.err" &&
        [ "$(grep -vc '^\[server\] listening on ' "$SV/load.err")" -eq 1 ] && [ ! -s "$SV/load.out" ]; then
        ok "server: a truncated GGUF: one error line naming it, status 1"
    else
        bad "server: a truncated GGUF: one error line naming it, status 1" "status $rc: $(head -c 300 "$SV/load.err" | tr '\n' '|')"
    fi
    sv_models=()
    if have_shared models/gguf/families/qwen2-syn-q8_0.gguf; then
        sv_models+=("$SHARED/models/gguf/families/qwen2-syn-q8_0.gguf")
        have_shared models/gguf/families/llama3-syn-q4_k_m.gguf &&
            sv_models+=("$SHARED/models/gguf/families/llama3-syn-q4_k_m.gguf")
    else
        skip "server: chatml and llama3 templates from the file" "$SHARED/models/gguf/families is absent"
    fi
    # the tiny model (a GGUF of build/models/tiny.bin): its greedy reply has a character whose two
    # bytes are two tokens, which a stream must not cut in half
    m=$(tiny_gguf q8_0) && sv_models+=("$m:--chat-template,chatml")
    if have_shared models/gguf/stories260K-f32.gguf; then
        sv_models+=("$SHARED/models/gguf/stories260K-f32.gguf:--chat-template,zephyr"
                    "$SHARED/models/gguf/stories260K-f32.gguf:--chat-template,llama2")
    fi
    sv_args=()
    [ "${QUICK:-0}" = 1 ] && sv_args+=(--quick)
    [ -x "$BUILD/loadgen" ] && sv_args+=(--loadgen "$BUILD/loadgen")
    # the slow model: 4096 positions at some hundreds of tokens per second on one thread
    host=${HOST_BUILD:-$BUILD}
    if "$host/mksynth" --dim 512 --hidden 1536 --layers 8 --heads 8 --kv-heads 8 --vocab 512 --seq-len 4096 \
            -o "$SV/slow.bin" --tokenizer-out "$SV/tok.bin" >/dev/null 2>&1 &&
        "$host/gguf_convert" -m "$SV/slow.bin" -z "$SV/tok.bin" -o "$SV/slow-q8_0.gguf" -t q8_0 >/dev/null 2>&1; then
        rm -f "$SV/slow.bin"
        sv_args+=(--slow "$SV/slow-q8_0.gguf:--chat-template,zephyr")
    else
        bad "server: the slow model" "mksynth or gguf_convert failed"
    fi
    timeout 900 python3 tests/server_check.py "$SB" "$SV/work" "${sv_args[@]}" "${sv_models[@]}" \
        >"$SV/out" 2>"$SV/err"
    relay_results "server: " "$SV/out" "$SV/err" $? "server"
    # nothing may outlive the test: the servers it started (their ids in server.pids), not any
    # other "ch09 --server" that runs on the machine
    left=""
    while read -r pid; do
        if kill -0 "$pid" 2>/dev/null && ps -p "$pid" -o args= 2>/dev/null | grep -q -- "--server"; then
            left="$left $pid"
            kill -9 "$pid" 2>/dev/null
        fi
    done < <(cat "$SV/work/server.pids" 2>/dev/null)
    if [ -n "$left" ]; then bad "server: no server outlives the test" "still running:$left"
    elif [ ! -s "$SV/work/server.pids" ]; then bad "server: no server outlives the test" "no server was started"
    else ok "server: no server outlives the test"; fi
fi

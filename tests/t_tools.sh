# tests/t_tools.sh — the helper tools: mksynth, logits_cmp, membw.
#
# Sourced by the test runner (see tests/lib.sh) with BUILD, SHARED and TMP set.
# Everything here takes a few seconds; tests that read $SHARED skip without it.

TOOLS_REF=reference/stories260K/llama2c/logits-ts0.bin
TOOLS_OTHER=reference/llama2xs/llama2c/logits-ts0.bin
TOOLS_TS0=reference/ts0.tok512.tokens
TOOLS_GREEDY=reference/stories260K/llama2c/greedy-p1.tokens

# tools_header FILE: the 7 int32 of a llama2.c header, space-separated.
tools_header() { od -An -t d4 -N 28 "$1" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; }

# tools_expected_size "HEADER": the file size a llama2.c header implies.
tools_expected_size() {
    set -- $1
    local dim=$1 hid=$2 L=$3 H=$4 KV=$5 V=$6 S=$7 extra=0
    if [ "$V" -lt 0 ]; then V=$((-V)); extra=$((V * dim)); fi
    local kv=$((dim * KV / H)) hs=$((dim / H))
    local floats=$((V * dim + L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hid * dim) + dim + S * hs + extra))
    echo $((28 + 4 * floats))
}

# tools_size_matches NAME FILE: the file is exactly as long as its header says.
tools_size_matches() {
    local name=$1 file=$2 want got
    want=$(tools_expected_size "$(tools_header "$file")")
    got=$(wc -c <"$file" | tr -d ' ')
    if [ "$want" = "$got" ]; then ok "$name"; else bad "$name" "size $got, header implies $want"; fi
}

# tools_expect_bad_input NAME CMD...: exit status 2, one "error: " line on
# stderr, nothing on stdout (logits_cmp's contract; 1 means "out of tolerance").
tools_expect_bad_input() {
    local name=$1; shift
    local out="$TMP/bi.out" err="$TMP/bi.err" rc
    timeout 30 "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    if [ "$rc" -ne 2 ]; then
        bad "$name" "exit status $rc, expected 2 ($(head -c 200 "$err" | tr '\n' ' '))"
    elif [ "$(wc -l <"$err")" -ne 1 ] || ! grep -q '^error: ' "$err"; then
        bad "$name" "stderr should be one 'error: ' line, got: $(head -c 300 "$err" | tr '\n' '|')"
    elif [ -s "$out" ]; then
        bad "$name" "printed to stdout: $(head -c 100 "$out")"
    else
        ok "$name"
    fi
}

# tools_check_tokenizer FILE VOCAB: "ok" or what is wrong. Walks the records
# of a llama2.c tokenizer.bin and checks the layout promised by mksynth:
# specials, byte tokens, all pieces distinct, every longer piece's prefix
# present (so BPE can build it), max_token_length = the longest piece.
tools_check_tokenizer() {
    od -An -v -tu1 "$1" | LC_ALL=C awk -v vocab="$2" '
        { for (i = 1; i <= NF; i++) b[n++] = $i }
        function i32(o) { return b[o] + 256 * b[o + 1] + 65536 * b[o + 2] + 16777216 * b[o + 3] }
        END {
            maxlen = i32(0); o = 4; longest = 0
            for (id = 0; id < vocab; id++) {
                if (o + 8 > n) { printf "file ends at entry %d of %d", id, vocab; exit }
                len = i32(o + 4); o += 8
                if (len < 1 || len > 64 || o + len > n) { printf "entry %d: bad length %d", id, len; exit }
                s = ""; for (k = 0; k < len; k++) s = s sprintf("%c", b[o + k]); o += len
                if (s in seen) { printf "entry %d repeats entry %d", id, seen[s]; exit }
                seen[s] = id; piece[id] = s
                if (len > longest) longest = len
            }
            if (o != n) { printf "%d bytes after the last of %d entries", n - o, vocab; exit }
            if (maxlen != longest) { printf "max_token_length %d, longest piece %d", maxlen, longest; exit }
            if (piece[0] != "<unk>" || piece[1] != "\n<s>\n" || piece[2] != "\n</s>\n") { print "specials wrong"; exit }
            if (piece[3] != "<0x00>" || piece[3 + 171] != "<0xAB>" || piece[258] != "<0xFF>") { print "byte tokens wrong"; exit }
            if (piece[259] != " ") { print "id 259 is not a space"; exit }
            for (id = 259; id < vocab; id++) {
                s = piece[id]
                if (length(s) > 1 && !(substr(s, 1, length(s) - 1) in seen)) { printf "no prefix for piece %d", id; exit }
                if (length(s) > 1 && seen[substr(s, 1, length(s) - 1)] > id) { printf "prefix after piece %d", id; exit }
            }
            print "ok"
        }'
}

tools_test_mksynth() {
    local m="$BUILD/mksynth"
    "$m" --preset tiny -o "$TMP/a.bin" --tokenizer-out "$TMP/ta.bin" 2>/dev/null
    "$m" --preset tiny -o "$TMP/b.bin" --tokenizer-out "$TMP/tb.bin" 2>/dev/null
    if cmp -s "$TMP/a.bin" "$TMP/b.bin" && cmp -s "$TMP/ta.bin" "$TMP/tb.bin"; then
        ok "mksynth: same flags, same bytes"
    else
        bad "mksynth: same flags, same bytes" "two runs differ"
    fi

    "$m" --preset tiny --seed 7 -o "$TMP/c.bin" 2>/dev/null
    if [ -s "$TMP/c.bin" ] && ! cmp -s "$TMP/a.bin" "$TMP/c.bin"; then
        ok "mksynth: another seed, other weights"
    else
        bad "mksynth: another seed, other weights" "--seed 7 wrote the same file"
    fi

    local h; h=$(tools_header "$TMP/a.bin")
    if [ "$h" = "64 192 2 4 2 512 256" ]; then ok "mksynth: tiny header"; else bad "mksynth: tiny header" "got $h"; fi
    tools_size_matches "mksynth: tiny file size" "$TMP/a.bin"

    "$m" --preset tiny --layers 3 --unshared --seq-len 32 -o "$TMP/u.bin" 2>/dev/null
    h=$(tools_header "$TMP/u.bin")
    if [ "$h" = "64 192 3 4 2 -512 32" ]; then ok "mksynth: flags override the preset"; else bad "mksynth: flags override the preset" "header $h"; fi
    tools_size_matches "mksynth: unshared file size" "$TMP/u.bin"

    local out
    out=$("$m" --dim 48 --hidden 80 --layers 1 --heads 6 --kv-heads 3 --vocab 300 --seq-len 8 \
        -o "$TMP/s.bin" --tokenizer-out "$TMP/ts.bin" 2>"$TMP/s.err")
    if [ -n "$out" ]; then
        bad "mksynth: quiet on stdout" "printed: $(echo "$out" | head -c 100)"
    elif [ "$(wc -l <"$TMP/s.err")" -ne 1 ] || ! grep -q 'params' "$TMP/s.err"; then
        bad "mksynth: quiet on stdout" "stderr should be one summary line: $(head -c 200 "$TMP/s.err")"
    else
        ok "mksynth: quiet on stdout, one summary line"
    fi
    tools_size_matches "mksynth: odd shape file size" "$TMP/s.bin"

    local verdict
    verdict=$(tools_check_tokenizer "$TMP/ta.bin" 512)
    if [ "$verdict" = ok ]; then ok "mksynth: tokenizer of 512"; else bad "mksynth: tokenizer of 512" "$verdict"; fi
    verdict=$(tools_check_tokenizer "$TMP/ts.bin" 300)
    if [ "$verdict" = ok ]; then ok "mksynth: tokenizer of 300"; else bad "mksynth: tokenizer of 300" "$verdict"; fi

    expect_error "mksynth: dim not a multiple of heads" "$m" --dim 30 --heads 4 -o "$TMP/x.bin"
    expect_error "mksynth: heads not a multiple of kv-heads" "$m" --heads 4 --kv-heads 3 -o "$TMP/x.bin"
    expect_error "mksynth: odd head size" "$m" --dim 12 --heads 4 --kv-heads 4 -o "$TMP/x.bin"
    expect_error "mksynth: zero layers" "$m" --layers 0 -o "$TMP/x.bin"
    expect_error "mksynth: vocab too small for a tokenizer" "$m" --vocab 200 -o "$TMP/x.bin" --tokenizer-out "$TMP/xt.bin"
    expect_error "mksynth: non-numeric size" "$m" --dim 6x4 -o "$TMP/x.bin"
    expect_error "mksynth: unknown preset" "$m" --preset huge -o "$TMP/x.bin"
    expect_error "mksynth: no output file" "$m" --preset tiny
    expect_error "mksynth: unwritable output" "$m" -o "$TMP/no/such/dir/x.bin"
    if [ -e "$TMP/x.bin" ] || [ -e "$TMP/xt.bin" ]; then
        bad "mksynth: no file left by an error" "$(ls "$TMP"/x*.bin)"
    else
        ok "mksynth: no file left by an error"
    fi
}

tools_test_logits_cmp() {
    local c="$BUILD/logits_cmp" out rc
    if ! have_shared "$TOOLS_REF" "$TOOLS_OTHER" "$TOOLS_TS0" "$TOOLS_GREEDY"; then
        skip "logits_cmp: reference files" "no $SHARED/reference"
        return
    fi
    local ref="$SHARED/$TOOLS_REF" other="$SHARED/$TOOLS_OTHER" ts0="$SHARED/$TOOLS_TS0"

    out=$("$c" "$ref" "$ref" --max-diff 0 --max-kl 0 --min-top1 1 2>&1); rc=$?
    if [ $rc -eq 0 ] && echo "$out" | grep -q '^max|diff| 0  mean KL(ref||ours) 0  top-1 128/128 (100.0%)$'; then
        ok "logits_cmp: a file against itself"
    else
        bad "logits_cmp: a file against itself" "rc $rc: $out"
    fi

    out=$("$c" "$ref" "$other" --max-diff 1e-3 2>&1); rc=$?
    if [ $rc -eq 1 ] && echo "$out" | grep -q 'max-diff'; then
        ok "logits_cmp: another model fails --max-diff"
    else
        bad "logits_cmp: another model fails --max-diff" "rc $rc: $out"
    fi

    "$c" "$ref" "$other" --rows 0:1 --max-diff 1e3 >/dev/null 2>&1; rc=$?
    if [ $rc -eq 0 ]; then ok "logits_cmp: loose tolerance passes"; else bad "logits_cmp: loose tolerance passes" "rc $rc"; fi

    out=$("$c" "$ts0" "$ref" --tie-aware 100 2>&1); rc=$?
    if [ $rc -eq 0 ] && echo "$out" | grep -q '^worst shortfall [0-9.e+-]* at row [0-9]* (0 of 127 rows over 100)$'; then
        ok "logits_cmp: tie-aware against a .tokens file"
    else
        bad "logits_cmp: tie-aware against a .tokens file" "rc $rc: $out"
    fi
    # ts0 is teacher-forced text, not greedy output: a tight delta must fail.
    "$c" "$ref" "$ref" --tie-aware 0.01 --from 1 >/dev/null 2>&1; rc=$?
    if [ $rc -eq 1 ]; then ok "logits_cmp: tie-aware catches non-greedy ids"; else bad "logits_cmp: tie-aware catches non-greedy ids" "rc $rc"; fi

    printf 'not logits\n' >"$TMP/garbage.lgts"
    head -c 1000 "$ref" >"$TMP/short.lgts"
    tools_expect_bad_input "logits_cmp: garbage file" "$c" "$ref" "$TMP/garbage.lgts"
    tools_expect_bad_input "logits_cmp: truncated file" "$c" "$ref" "$TMP/short.lgts"
    tools_expect_bad_input "logits_cmp: missing file" "$c" "$ref" "$TMP/none.lgts"
    tools_expect_bad_input "logits_cmp: other token ids" "$c" "$SHARED/$TOOLS_GREEDY" "$ref" --tie-aware 1
    tools_expect_bad_input "logits_cmp: rows out of range" "$c" "$ref" "$ref" --rows 5:500
    tools_expect_bad_input "logits_cmp: unknown option" "$c" "$ref" "$ref" --fast
    tools_expect_bad_input "logits_cmp: one file" "$c" "$ref"
}

tools_test_membw() {
    local out
    out=$("$BUILD/membw" --threads 1 --mb 64 --seconds 0.2 2>&1)
    if echo "$out" | grep -qx 'membw threads=1 GB/s=[0-9]*\.[0-9][0-9]' &&
        [ "$(echo "$out" | wc -l)" -eq 1 ] && ! echo "$out" | grep -q 'GB/s=0\.00'; then
        ok "membw: one positive reading"
    else
        bad "membw: one positive reading" "$out"
    fi
    expect_error "membw: bad thread count" "$BUILD/membw" --threads 0
}

tools_test_mksynth
tools_test_logits_cmp
tools_test_membw

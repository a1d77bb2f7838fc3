# Threads change nothing: for every GGUF file in $SHARED that the newest GGUF chapter (the last
# "gguf" row of chapters/chapters.tsv) can load, the teacher-forced logits (--logits) of the same
# ids at 1, 2, 3 and 7 threads are the same bytes (cmp of the LGTS files). 7 is more threads than
# the machine has cores, and 2 and 3 split the rows of a matmul and the heads of attention at
# other boundaries than 1 and 7 do; every output must be computed the same way whichever thread
# computes it.
#
# The ids are the model's own tokenization of a short prompt (BOS and 20-30 more), so that each
# file is read with its own vocabulary. A file that the chapter refuses with one error line
# (exit status 1: files of other families until they are supported, vocabulary-only files) is
# skipped, visibly, with that line as the reason; a crash or any other failure to load is a
# failure.
#
# All of it takes some 3 s on 2 cores (4 s under ASan), so QUICK=1 changes nothing here.
DT_CH=$(chapters reads=gguf | tail -n 1)
DT_BIN=$BUILD/ch$DT_CH
DT_PROMPT="Once upon a time, there was a little girl named Lily. She loved to play in the park."
DT_THREADS="1 2 3 7"

# determinism_of FILE NAME: one ok, bad or skip for one GGUF file
determinism_of() {
    local file=$1 name="ch$DT_CH determinism: $2" rc ids t
    "$DT_BIN" -m "$file" -p "$DT_PROMPT" -n 0 --ids >"$TMP/dt.ids" 2>"$TMP/dt.err" </dev/null
    rc=$?
    if [ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/dt.err")" -eq 1 ] && grep -q '^error: ' "$TMP/dt.err"; then
        skip "$name" "ch$DT_CH refuses it: $(sed "s|$SHARED/||" "$TMP/dt.err")"
        return
    fi
    ids=$(cat "$TMP/dt.ids")
    if [ "$rc" -ne 0 ] || [ -z "$ids" ]; then
        bad "$name" "tokenizing the prompt: exit status $rc, $(head -c 200 "$TMP/dt.err" | tr '\n' ' ')"
        return
    fi
    for t in $DT_THREADS; do
        if ! "$DT_BIN" -m "$file" -t "$t" --logits "$TMP/dt-$t.lgts" --tokens "$ids" >/dev/null 2>"$TMP/dt.err"; then
            bad "$name" "--logits with $t threads: $(head -c 200 "$TMP/dt.err" | tr '\n' ' ')"
            return
        fi
        if [ "$t" != 1 ] && ! cmp -s "$TMP/dt-1.lgts" "$TMP/dt-$t.lgts"; then
            bad "$name" "the logits with $t threads differ from those with 1 ($(cd "$TMP" && cmp dt-1.lgts "dt-$t.lgts" 2>&1 | head -c 120))"
            return
        fi
    done
    ok "$name ($(echo "$ids" | wc -w) positions, threads ${DT_THREADS// /, }: the same bytes)"
}

if [ -z "$DT_CH" ] || [ ! -x "$DT_BIN" ]; then
    bad "determinism" "no GGUF chapter in chapters/chapters.tsv, or $DT_BIN is not built"
elif [ -z "$(find -L "$SHARED" -name '*.gguf' 2>/dev/null | head -n 1)" ]; then
    skip "ch$DT_CH determinism" "no GGUF file in $SHARED"
else
    while IFS= read -r f; do
        determinism_of "$f" "${f#"$SHARED"/}"
    done < <(find -L "$SHARED" -name '*.gguf' | LC_ALL=C sort)
fi
rm -f "$TMP"/dt-*.lgts "$TMP"/dt.ids "$TMP"/dt.err

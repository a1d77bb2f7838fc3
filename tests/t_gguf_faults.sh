# The faults of GGUF files that the GGUF chapters (chapters/chapters.tsv, "reads" gguf) must
# handle, each for every such chapter:
#
#  - a sparse file whose header claims 10 million tensors and then holds nothing: refused at its
#    first entry, under an address-space limit of 1 GiB, without reserving memory for the
#    claimed count (the reader used to reserve 1.7 GB for it, 19 GB for 130 million);
#  - general.alignment 1 and 2, valid GGUF that puts tensors at addresses the kernels cannot
#    read in place: the chapter copies them and gives the logits of the same model aligned, bit
#    for bit (in the sanitizer build UBSan checks that no misaligned load is left);
#  - norms shaped [64, 1] and [64, 1, 1, 1], a matrix [64, 64, 1]: what ggml calls [64] and
#    [64, 64]; the same logits as the plain shapes;
#  - a type no chapter runs, by name: an IQ4_XS file is "type iq4_xs is not supported";
#  - --check-tensors: a NaN or an infinity in a weight (f32, f16, a q8_0 scale, a norm, the
#    embedding, a misaligned tensor) is named with its tensor and row; valid files pass it with
#    the logits they give without it; without it, a broken weight is no undefined behaviour
#    (no sanitizer report, no signal: at most one error line from the driver).
#
# The files come from tests/unit_gguf.c (--write-cases: models.tsv and faults.tsv; --poison: a
# real K-quant model with one NaN, so that the NaN reaches the Q8_K activation quantizer).

# faults_files: write the test files once, into $TMP/faults
faults_files() {
    [ -e "$TMP/faults/faults.tsv" ] && return 0
    "$BUILD/tests/unit_gguf" --write-cases "$TMP/faults" >/dev/null 2>"$TMP/err"
}

# same_logits NAME A B: chapter $CHB gives the same teacher-forced logits on model files A and B, bit for bit
same_logits() {
    local name=$1 a=$2 b=$3 ids="1 260 261 262 299 270 3 280"
    if ! "$CHB" -m "$a" --logits "$TMP/a.lgts" --tokens "$ids" 2>"$TMP/err"; then
        bad "$name" "$(basename "$a"): $(tail -n 1 "$TMP/err")"
    elif ! "$CHB" -m "$b" --logits "$TMP/b.lgts" --tokens "$ids" 2>"$TMP/err"; then
        bad "$name" "$(basename "$b"): $(tail -n 1 "$TMP/err")"
    elif grep -q 'runtime error' "$TMP/err"; then
        bad "$name" "$(grep -m 1 'runtime error' "$TMP/err")"
    elif cmp -s "$TMP/a.lgts" "$TMP/b.lgts"; then
        ok "$name"
    else
        bad "$name" "the logits differ"
    fi
}

# sparse_claims: a 330 MB file of zeros (4 KiB on disk) behind a header that claims 10 million
# tensors, under `ulimit -v` 1 GiB; a sanitizer build cannot start under such a limit, so there
# its allocator is told to refuse any single allocation over 256 MiB instead
sparse_claims() {
    local f=$TMP/sparse.gguf limit=1048576 how
    { printf 'GGUF'; le32 3 10000000 0 0 0; } >"$f"
    truncate -s 330004096 "$f"
    if (ulimit -v "$limit" && "$CHB" -m "$(tiny_gguf q4_0)" -n 0) >/dev/null 2>&1; then
        how="under a 1 GiB address-space limit"
        expect_error "$G sparse file claiming 10 million tensors, $how" bash -c 'ulimit -v "$1" && exec "$2" -m "$3" -n 1' \
            _ "$limit" "$CHB" "$f"
    else
        how="with allocations over 256 MiB refused"
        expect_error "$G sparse file claiming 10 million tensors, $how" env \
            ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}max_allocation_size_mb=256:allocator_may_return_null=1" \
            "$CHB" -m "$f" -n 1
    fi
    if ! grep -q "tensor 0 has an empty name" "$TMP/ee.err"; then
        bad "$G sparse file: refused at its first entry, $how" "$(head -c 200 "$TMP/ee.err")"
    else
        ok "$G sparse file: refused at its first entry, $how"
    fi
    rm -f "$f"
}

gguf_faults() {
    local F=$TMP/faults slug what expect m
    if ! faults_files; then bad "$G fault files" "unit_gguf --write-cases failed: $(head -c 200 "$TMP/err")"; return; fi
    sparse_claims

    same_logits "$G general.alignment 1 (every tensor misaligned, copied) = the aligned file, bit for bit" \
        "$F/model-align1.gguf" "$F/model-valid.gguf"
    same_logits "$G general.alignment 1, an f16 matrix misaligned = the aligned file, bit for bit" \
        "$F/model-align1-f16.gguf" "$F/model-f16-v.gguf"
    same_logits "$G general.alignment 2, floats misaligned, a q8_0 matrix aligned = the aligned file, bit for bit" \
        "$F/model-align2-q8_0.gguf" "$F/model-q8_0-k.gguf"
    if "$CHB" -m "$F/model-align1.gguf" -n 0 -v 2>&1 | grep -q "bytes copied (tensors not aligned"; then
        ok "$G -v says how many bytes of misaligned tensors were copied"
    else
        bad "$G -v says how many bytes of misaligned tensors were copied" "$("$CHB" -m "$F/model-align1.gguf" -n 0 -v 2>&1 | grep '^weights')"
    fi
    same_logits "$G a norm shaped [64, 1] is the vector [64]" "$F/model-norm-64x1.gguf" "$F/model-valid.gguf"
    same_logits "$G a norm shaped [64, 1, 1, 1] is the vector [64]" "$F/model-norm-4d.gguf" "$F/model-valid.gguf"
    same_logits "$G a matrix shaped [64, 64, 1] is the matrix [64, 64]" "$F/model-matrix-3d.gguf" "$F/model-valid.gguf"

    if ! have_shared models/gguf/families/smollm-syn-iq4_xs.gguf; then
        skip "$G an IQ4_XS file" "smollm-syn-iq4_xs.gguf not in $SHARED"
    elif [ $((10#${G#ch})) -ge 8 ]; then # chapter 8 runs IQ4_XS: the file loads (tests/t_ch08.sh checks its numbers)
        if "$CHB" -m "$SHARED/models/gguf/families/smollm-syn-iq4_xs.gguf" --logits "$TMP/iq4.lgts" --tokens "1 2 3" \
            2>"$TMP/iq4.err" && [ -s "$TMP/iq4.lgts" ]; then ok "$G runs an IQ4_XS file"
        else bad "$G runs an IQ4_XS file" "$(tail -n 1 "$TMP/iq4.err")"; fi
    else
        m=$SHARED/models/gguf/families/smollm-syn-iq4_xs.gguf
        expect_error "$G an IQ4_XS file" "$CHB" -m "$m" -n 1
        expect="tensor blk.0.attn_q.weight: type iq4_xs is not supported by chapter $((10#${G#ch}))"
        if grep -qF "$expect" "$TMP/ee.err"; then ok "$G an IQ4_XS file: the type by name, not supported"
        else bad "$G an IQ4_XS file: the type by name, not supported" "expected \"$expect\", got: $(head -c 200 "$TMP/ee.err")"; fi
    fi

    # --check-tensors: every broken weight named, with its row
    while IFS=$'\t' read -r slug what expect; do
        expect_error "$G --check-tensors: $what" "$CHB" -m "$F/$slug.gguf" --check-tensors -n 1
        if ! grep -qF -- "error: $F/$slug.gguf: $expect" "$TMP/ee.err"; then
            bad "$G --check-tensors: $what: the message" "expected \"$expect\", got: $(head -c 200 "$TMP/ee.err")"
        fi
        # without it: no undefined behaviour, no signal; the driver may stop with one line
        "$CHB" -m "$F/$slug.gguf" -p "abc" -n 4 --temp 0 >/dev/null 2>"$TMP/err" </dev/null
        local rc=$?
        if [ "$rc" -gt 1 ] || grep -q 'runtime error\|Sanitizer' "$TMP/err"; then
            bad "$G without --check-tensors: $what" "exit $rc: $(grep -m 1 'runtime error\|Sanitizer' "$TMP/err" || tail -n 1 "$TMP/err")"
        else
            ok "$G without --check-tensors: $what (exit $rc)"
        fi
    done <"$F/faults.tsv"

    # valid files pass it, and it changes no logit
    for m in "$F/model-valid.gguf" "$F/model-align2-q8_0.gguf" "$SHARED/models/gguf/syn-k256-q4_k_m.gguf" \
        "$SHARED/models/gguf/stories260K-q6_k.gguf" "$SHARED/models/gguf/llama2xs-q4_0.gguf"; do
        [ -e "$m" ] || { skip "$G --check-tensors passes $(basename "$m")" "not found"; continue; }
        if "$CHB" -m "$m" --check-tensors --logits "$TMP/c1.lgts" --tokens "1 260 261 262" 2>"$TMP/err" &&
            "$CHB" -m "$m" --logits "$TMP/c0.lgts" --tokens "1 260 261 262" 2>>"$TMP/err" && cmp -s "$TMP/c0.lgts" "$TMP/c1.lgts"; then
            ok "$G --check-tensors passes $(basename "$m"), same logits"
        else
            bad "$G --check-tensors passes $(basename "$m"), same logits" "$(tail -n 1 "$TMP/err")"
        fi
    done

    # a NaN norm weight of a K-quant model: the NaN reaches the Q8_K quantizer of the activations
    m=$SHARED/models/gguf/syn-k256-q4_k_m.gguf
    if [ -e "$m" ] && "$BUILD/tests/unit_gguf" --poison "$m" "$TMP/poisoned.gguf" blk.0.attn_norm.weight 0 2>"$TMP/err"; then
        expect_error "$G --check-tensors: a NaN norm weight of syn-k256-q4_k_m" "$CHB" -m "$TMP/poisoned.gguf" --check-tensors -n 1
        grep -qF -- "--check-tensors: tensor blk.0.attn_norm.weight, row 0: NaN" "$TMP/ee.err" ||
            bad "$G --check-tensors: a NaN norm weight of syn-k256-q4_k_m: the message" "$(head -c 200 "$TMP/ee.err")"
        "$CHB" -m "$TMP/poisoned.gguf" -p "abc" -n 4 --temp 0 >/dev/null 2>"$TMP/err" </dev/null
        local rc=$?
        if [ "$rc" -gt 1 ] || grep -q 'runtime error\|Sanitizer' "$TMP/err"; then
            bad "$G without --check-tensors: NaN activations through Q8_K (syn-k256-q4_k_m)" "exit $rc: $(grep -m 1 'runtime error\|Sanitizer' "$TMP/err" || tail -n 1 "$TMP/err")"
        else
            ok "$G without --check-tensors: NaN activations through Q8_K (syn-k256-q4_k_m), exit $rc"
        fi
        rm -f "$TMP/poisoned.gguf"
    else
        skip "$G NaN activations through Q8_K" "syn-k256-q4_k_m.gguf not in $SHARED"
    fi
}

for nn in $(chapters reads=gguf); do
    G=ch$nn CHB=$BUILD/ch$nn
    if [ ! -x "$CHB" ]; then skip "$G GGUF faults" "$CHB not built"; continue; fi
    gguf_faults
done

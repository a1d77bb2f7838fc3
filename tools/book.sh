#!/usr/bin/env bash
# tools/book.sh — what `make docs` runs: the book as HTML.
#
#   bash tools/book.sh [--out DIR]      (default DIR: docs; the HTML goes to DIR/html)
#
# The pages are docs/*.md and the annotated sources (chapters/, src/), read by Doxygen with
# docs/Doxyfile. Some parts of the pages are made here first, into DIR/gen:
#
#   pages/diffNN.md          `make diff N=NN` as a page, for every chapter after the first
#   pages/diffs.md           the index of those pages
#   parts/chapters.md        the list of chapters for the main page (those with a docs/chNN.md page)
#   parts/nav_chNN.md        the links to the chapter pages before and after chapter NN's
#   parts/exercises_chNN.md  chapter NN's graded exercises, from the EXERCISE markers in its
#                            source (tools/grade/exercises.awk) and tools/grade/chapters.tsv
#   parts/exercises_all.md   every exercise, one table
#   parts/bench_all.md       docs/bench.md (written by `make bench`, committed) and its chart
#   parts/bench_chNN.md      the progression's rows of chapter NN and the one before, and their
#                            chart in img/; a note when docs/bench.md is absent
#   parts/bench_ID.md        the table ID of docs/bench.md (the tables of tools/bench.tsv, which
#                            the chapters' "Cost and speed" sections include); a note if absent
#   parts/bench_batch.md     docs/bench_batch.md, chapter 7's run (prompts, llama.cpp, roofline)
#   parts/bench_server.md    docs/bench_server.md, chapter 9's run (clients at once, llama-server)
#
# A page includes a part with \include{doc} NAME.md. Every function of every chapter also
# gets an alias linking to its line in the annotated source: \ch01_rmsnorm writes
# "rmsnorm()" as a link to chapters/01_naive.c's rmsnorm. Doxygen runs with warnings as
# errors; this script fails if it prints anything at all.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=docs
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT=$2; shift 2 ;;
    *) echo "error: book.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done
command -v doxygen >/dev/null || { echo "error: doxygen is not installed" >&2; exit 1; }
GEN=$OUT/gen
rm -rf "$GEN"
mkdir -p "$GEN/pages" "$GEN/parts" "$GEN/img" || exit 1

CHAPTERS=$(ls chapters/[0-9][0-9]_*.c)
nn_of() { basename "$1" | cut -c1-2; }
num() { echo $((10#$1)); }

# Doxygen's name for a file's annotated source page: 01_naive.c -> 01__naive_8c_source.html
source_page() { basename "$1" | sed -e 's/_/__/g' -e 's/\./_8/g' -e 's/$/_source.html/'; }

# html_escape: stdin to stdout (and every * as &#42;: Doxygen stops at a lone */ in a page)
html_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/\*/\&#42;/g'; }

# ---------------------------------------------------------------------------------------------
# The chapter list of the main page, in reading order.
{
    for f in $CHAPTERS; do
        nn=$(nn_of "$f")
        if [ -e "docs/ch$nn.md" ]; then
            echo "$(num "$nn"). @subpage ch$nn (\`$f\`)"
        else
            echo "$(num "$nn"). \`$f\` (its page is still to be written)."
        fi
    done
} >"$GEN/parts/chapters.md"

# ---------------------------------------------------------------------------------------------
# The way through the book: nav_chNN.md, which chapter NN's page includes at its top and its
# bottom, links the chapter pages before and after it, in the order of the chapter list; the
# first one leads back to the reading guide, the last one on to the results.
PAGED=$(for f in $CHAPTERS; do nn=$(nn_of "$f"); [ -e "docs/ch$nn.md" ] && echo "$nn"; done)
before="\\ref reading"
for nn in $PAGED; do
    after=$(echo "$PAGED" | awk -v nn="$nn" 'found { print "\\ref ch" $0; exit } $0 == nn { found = 1 }')
    {
        echo "**Before:** $before · **Next:** ${after:-\\ref results} · **All chapters:** \\ref index \"the contents\""
    } >"$GEN/parts/nav_ch$nn.md"
    before="\\ref ch$nn"
done

# ---------------------------------------------------------------------------------------------
# The diff pages.
prev=""
{
    echo "# The changes, chapter by chapter {#diffs}"
    echo
    echo "Each page is the output of \`make diff N=k\`: the unified diff from chapter k-1's source to"
    echo "chapter k's, then every file the chapter introduces outside chapters/ (its kernels, its file"
    echo "reader, its thread pool: the \"introduces\" column of chapters/chapters.tsv) as a new file. So a"
    echo "chapter's diff is its whole idea. Read a chapter's page first; its diff then shows that nothing"
    echo "else changed."
    echo
} >"$GEN/pages/diffs.md"
for f in $CHAPTERS; do
    nn=$(nn_of "$f")
    if [ -n "$prev" ]; then
        bash tools/chapter_diff.sh "$nn" >"$GEN/diff.txt" || exit 1
        added=$(($(grep -c '^+' "$GEN/diff.txt") - $(grep -c '^+++ ' "$GEN/diff.txt")))
        removed=$(($(grep -c '^-' "$GEN/diff.txt") - $(grep -c '^--- ' "$GEN/diff.txt")))
        ref="chapter $(num "$nn")"
        [ -e "docs/ch$nn.md" ] && ref="\\ref ch$nn"
        {
            echo "# Chapter $(num "$(nn_of "$prev")") to chapter $(num "$nn"): the diff {#diff$nn}"
            echo
            intro=$(awk -F '\t' -v ch="$nn" '$1 == ch && $4 != "-" { gsub(",", ", ", $4); print $4 }' chapters/chapters.tsv)
            echo "\`make diff N=$(num "$nn")\`: everything that $ref changes in \`$prev\` to make \`$f\`${intro:+, and the files it introduces ($intro)}"
            echo "($added lines added, $removed removed, comments included)."
            echo
            echo "\\htmlonly"
            echo "<pre class=\"diff\">"
            html_escape <"$GEN/diff.txt" | awk '
                /^(\+\+\+|---) / { print "<span class=\"file\">" $0 "</span>"; next }
                /^@@/ { print "<span class=\"hunk\">" $0 "</span>"; next }
                /^\+/ { print "<span class=\"add\">" $0 "</span>"; next }
                /^-/ { print "<span class=\"del\">" $0 "</span>"; next }
                { print }'
            echo "</pre>"
            echo "\\endhtmlonly"
        } >"$GEN/pages/diff$nn.md"
        echo "- @subpage diff$nn" >>"$GEN/pages/diffs.md"
    fi
    prev=$f
done
rm -f "$GEN/diff.txt"

# ---------------------------------------------------------------------------------------------
# The exercises.

# grader_text NN: what `make grade` checks for chapter NN, in words
grader_text() {
    local cfg models positions max_diff min_top1 max_kl greedy probe threads chain prev
    cfg=$(awk -F '\t' -v ch="$1" '$1 == ch' tools/grade/chapters.tsv)
    [ -z "$cfg" ] && { echo "Nothing yet: chapter $(num "$1") has no line in tools/grade/chapters.tsv."; return; }
    IFS=$'\t' read -r _ models positions max_diff min_top1 max_kl greedy probe threads _ <<<"$cfg"
    [ "${threads:--}" = - ] && threads=
    printf '%s' "\`make grade CH=$(num "$1")\` builds, for each exercise, the unmodified chapter with only that exercise's body taken from your file, and then your whole file. Each must compile; "
    printf '%s' "its teacher-forced logits over $positions positions (on ${models%%,*}$([ "$models" != "${models%%,*}" ] && echo ", else ${models##*,}")${threads:+, with $threads threads}) must agree with the unmodified chapter's"
    case $max_diff in -) ;; 0) printf '%s' " bit for bit (max |diff| 0)" ;; *) printf '%s' " within a max |diff| of $max_diff" ;; esac
    [ "$min_top1" != - ] && printf '%s' ", with the same argmax at a share of at least $min_top1 of the positions"
    [ "$max_kl" != - ] && printf '%s' ", with a mean KL divergence of at most $max_kl"
    chain=$(bash tools/grade/grade.sh chain "$(num "$1")")
    if [ -n "$chain" ]; then
        read -r prev max_diff min_top1 max_kl <<<"$chain"
        printf '%s' ", and with chapter $(num "$prev")'s as tests/chain.tsv requires ("
        printf '%s' "$( { [ "$max_diff" != - ] && echo "max |diff| $max_diff"; [ "$min_top1" != - ] && echo "top-1 share $min_top1"; [ "$max_kl" != - ] && echo "mean KL $max_kl"; } | paste -sd ',' - | sed 's/,/, /g')"
        printf ')'
    fi
    [ "$greedy" = same ] && printf '%s' "; a greedy run of 24 positions must give the same ids"
    [ "$probe" != - ] && printf '%s' "; and the probe \`tools/grade/$probe\` must pass"
    echo "."
}

{
    echo "| chapter | exercise | what | where |"
    echo "|---|---|---|---|"
} >"$GEN/parts/exercises_all.md"
n_all=0
for f in $CHAPTERS; do
    nn=$(nn_of "$f")
    # the chapter's source, and any src/ file with exercises of this chapter (tools/grade/grade.sh)
    files=$(bash tools/grade/grade.sh files "$(num "$nn")") || exit 1
    list=$(for g in $files; do
        awk -v mode=list -v ch="$(num "$nn")" -f tools/grade/exercises.awk "$g" | awk -v g="$g" '{ print $0 "\t" g }'
    done | sort -t . -k 2,2n)
    if [ -z "$list" ]; then
        echo "Chapter $(num "$nn") has no graded exercises yet." >"$GEN/parts/exercises_ch$nn.md"
        continue
    fi
    starters="\`student/$(basename "$f")\`, this chapter"
    if [ "$(echo "$files" | wc -l)" -gt 1 ]; then
        starters="\`student/$(basename "$f")\` (this chapter)"
        for g in $files; do
            [ "$g" != "$f" ] && starters="$starters and \`student/$(basename "$g")\` (a copy of \`$g\`)"
        done
        starters="$starters,"
    fi
    {
        echo "- **Start** with \`make student CH=$(num "$nn")\`: it writes $starters"
        echo "  with the bodies below removed and a comment stating each task and its contract in their"
        echo "  place. Write them, then run \`make grade CH=$(num "$nn")\`, which says which exercises pass and"
        echo "  why the others do not."
        echo "- **How it is graded.** $(grader_text "$nn") See \\ref exercises for how the grader works."
        echo
        while IFS=$'\t' read -r id _ _ _ _ g; do
            awk -v mode=docs -v only="$id" -v srcpage="$(source_page "$g")" -f tools/grade/exercises.awk "$g" || exit 1
        done <<<"$list"
    } >"$GEN/parts/exercises_ch$nn.md" || exit 1
    while IFS=$'\t' read -r id name fn line _ g; do
        chapter=$(num "$nn")
        [ -e "docs/ch$nn.md" ] && chapter="\\ref ch$nn \"$(num "$nn")\""
        echo "| $chapter | $id | $name | <a href=\"$(source_page "$g")#l$(printf %05d "$line")\">$fn()</a> |" >>"$GEN/parts/exercises_all.md"
        n_all=$((n_all + 1))
    done <<<"$list"
done
[ "$n_all" -eq 0 ] && echo "No chapter has exercises yet." >"$GEN/parts/exercises_all.md"

# ---------------------------------------------------------------------------------------------
# Results: docs/bench.md (tools/bench.sh --out docs), whole, per chapter and per table. Its
# tables are marked by "<!-- bench:ID -->" lines (ID "progression": every chapter, one row each;
# the others: tools/bench.sh's comparisons), which the parts leave out.
# md_cells: a table cell may not hold a bare | (an older bench.sh wrote "max|diff|"): escape it
md_cells() { sed -e 's/max|diff|/max \\|diff\\|/g' -e '/^<!-- bench:.* -->$/d'; }
NO_BENCH="No measurements are committed yet: \`make bench BENCH_ARGS=\"--out docs\"\` writes
\`docs/bench.md\` and \`docs/bench.svg\`, and the next \`make docs\` shows them here."
# bench_table ID: table ID of docs/bench.md, its title and footnotes (status 1: no such table)
bench_table() { awk -v id="$1" '/^<!-- bench:/ { on = ($0 == "<!-- bench:" id " -->"); if (on) found = 1; next } on { print } END { exit !found }' docs/bench.md; }
if [ -e docs/bench.md ]; then
    {
        md_cells <docs/bench.md
        echo
        [ -e docs/bench.svg ] && echo "![Decode speed of every chapter, one thread and all threads (tools/bench_svg.sh)](bench.svg)"
    } >"$GEN/parts/bench_all.md"
else
    echo "$NO_BENCH" >"$GEN/parts/bench_all.md"
fi
# Chapter 7's own run (docs/bench_batch.md: tools/bench.sh --only '0[67]' with LLAMA_BENCH, on
# the same 16-core machine as docs/bench.md): prompt processing, llama.cpp and the roofline,
# whole, for its page
if [ -e docs/bench_batch.md ]; then md_cells <docs/bench_batch.md >"$GEN/parts/bench_batch.md"
else echo "$NO_BENCH" >"$GEN/parts/bench_batch.md"; fi
# Chapter 8's run: the new weight types against llama.cpp (docs/bench_families.md, written by hand from one run)
if [ -e docs/bench_families.md ]; then md_cells <docs/bench_families.md >"$GEN/parts/bench_families.md"
else echo "$NO_BENCH" >"$GEN/parts/bench_families.md"; fi
# Chapter 9's run: the server under load, against llama-server (docs/bench_server.md, from tools/bench_server.sh's table)
if [ -e docs/bench_server.md ]; then md_cells <docs/bench_server.md >"$GEN/parts/bench_server.md"
else echo "$NO_BENCH" >"$GEN/parts/bench_server.md"; fi
# the lines above the first table (date, CPU, bandwidth), for the parts of one table
BENCH_HEAD=$([ -e docs/bench.md ] && awk '/^<!-- bench:/ { exit } { print }' docs/bench.md)
for id in $( (awk -F '\t' '$1 == "table" { print $2 }' tools/bench.tsv
    [ -e docs/bench.md ] && sed -n 's/^<!-- bench:\(.*\) -->$/\1/p' docs/bench.md) | grep -v '^progression$' | sort -u); do
    if [ -e docs/bench.md ] && bench_table "$id" >"$GEN/bench.tmp"; then
        { echo "$BENCH_HEAD"; echo; md_cells <"$GEN/bench.tmp"; echo "The whole run: \\ref results."; } >"$GEN/parts/bench_$id.md"
    else
        echo "This table (\`$id\` of tools/bench.tsv) is not in the committed measurements, docs/bench.md: its runs were not made (the TinyLlama-shape rows need \`BENCH_BIG=1\`)." >"$GEN/parts/bench_$id.md"
    fi
done
prev=""
for f in $CHAPTERS; do
    nn=$(nn_of "$f")
    out=$GEN/parts/bench_ch$nn.md
    if [ ! -e docs/bench.md ]; then echo "$NO_BENCH" >"$out"; prev=$nn; continue; fi
    # The lines above the first table, the progression's caption and header, its rows of this
    # chapter and the one before, and the footnotes whose marks those rows use. Exit status 3:
    # no row of this chapter.
    if ! awk -v ch="$nn" -v prev="$prev" '
        function chapter_of(s,   f) { split(s, f, "|"); gsub(/ /, "", f[2]); return f[2] }
        /^<!-- bench:/ { part = $0 ~ /progression/ ? 1 : 2; next }
        part == 0 { print; next }
        part != 1 { next }
        /^\|/ {
            if (++row <= 2) { print; next }
            c = chapter_of($0)
            if (c == "ch" ch || (prev != "" && c == "ch" prev)) { print; rows = rows $0; if (c == "ch" ch) mine++ }
            next
        }
        row == 0 { print; next }
        /^[^ ]+ / { note[++nn] = $0 }
        END {
            for (i = 1; i <= nn; i++) { m = note[i]; sub(/ .*/, "", m); if (index(rows, m)) { print ""; print note[i] } }
            exit mine ? 0 : 3
        }' docs/bench.md >"$GEN/bench.tmp"; then
        echo "The committed measurements (docs/bench.md) have no rows for chapter $(num "$nn") yet." >"$out"
    else
        md_cells <"$GEN/bench.tmp" >"$out"
        bash tools/bench_svg.sh <"$GEN/bench.tmp" >"$GEN/img/bench_ch$nn.svg"
        if [ -n "$prev" ]; then what="chapters $(num "$prev") and $(num "$nn")"; else what="chapter $(num "$nn")"; fi
        { echo; echo "![Decode speed, $what](bench_ch$nn.svg)"; } >>"$out"
    fi
    echo >>"$out"
    echo "All chapters side by side: \\ref results." >>"$out"
    prev=$nn
done
rm -f "$GEN/bench.tmp"

# ---------------------------------------------------------------------------------------------
# Links into the annotated source: one alias per function of every chapter.
# A chapter's own functions come first; then those of the src/ headers it includes (chapter
# 4's kernels live in src/q8_kernels.h), each linking into that header's annotated source.
ALIASES=""
for f in $CHAPTERS; do
    nn=$(nn_of "$f")
    srcs=$f
    for h in $(sed -n 's/^#include "\([^"]*\.h\)".*/\1/p' "$f"); do [ -e "src/$h" ] && srcs="$srcs src/$h"; done
    ALIASES="$ALIASES$(for g in $srcs; do echo "$(source_page "$g")"; cat "$g"; echo "@@end"; done | awk -v nn="$nn" '
        page == "" { page = $0; line = 0; next }
        $0 == "@@end" { page = ""; next }
        { line++ }
        /^[A-Za-z].*[A-Za-z_0-9]+\(.*[,)] *\{? *$/ && !/^(if|for|while|return|typedef|#)/ {
            s = $0; sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); name = w[n]
            if (name in seen) next; seen[name] = 1
            printf "ALIASES += \"ch%s_%s=<a href=\\\"%s#l%05d\\\"><code>%s()</code></a>\"\n", nn, name, page, line, name
        }')
"
done

# ---------------------------------------------------------------------------------------------
# Doxygen, over docs/Doxyfile with this run's paths.
LOG=$GEN/doxygen.log
{
    cat docs/Doxyfile
    echo "OUTPUT_DIRECTORY = $OUT"
    echo "INPUT += $GEN/pages"
    echo "EXCLUDE += $OUT/html $GEN/parts"
    echo "EXAMPLE_PATH = $GEN/parts"
    echo "IMAGE_PATH += $GEN/img"
    printf '%s' "$ALIASES"
} | doxygen - >"$LOG" 2>&1
rc=$?
if [ "$rc" -ne 0 ] || [ -s "$LOG" ]; then
    cat "$LOG" >&2
    echo "error: doxygen failed or warned (exit status $rc); the book is not complete" >&2
    exit 1
fi
echo "book: $OUT/html/index.html"

# The book and its exercises.
#
#  - Exercises, for every chapter whose source has EXERCISE markers: the starter that
#    `make student` writes (the chapter, and its copies of the src/ files that
#    tools/grade/chapters.tsv names for it) compiles without warnings; the unmodified chapter, graded as if a
#    student had written it, passes every exercise; the blank starter fails every exercise
#    (and for the right reason: it compiles, then computes the wrong thing).
#  - `make docs` (tools/book.sh) builds the book with no Doxygen warning at all.
#  - The browser test: headless Chromium loads the main page, every other page of docs/ (the
#    reading guide, the chapters, the appendices, ...) and the diffs page from a loopback server
#    (tests/book_httpd.c) and tests/book_check.html checks that each page is there and shows
#    content, that every image and SVG figure loads, and that every link in the content leads
#    to an existing page and anchor; the server must not have answered 404 to anything.
#
# These tests need no long runs, but they build and grade several programs, so they run once,
# in the main stage: with QUICK=1 (the clang and sanitizer stages) they are skipped.

book_names() { # the checks of this file, to count them when they are skipped
    local nn
    for nn in $(bash tools/grade/grade.sh list 2>/dev/null | awk '{ print $1 }' | sort -u); do
        echo "book: ch$nn starter compiles without warnings"
        echo "book: ch$nn unmodified chapter passes its grading"
        echo "book: ch$nn blank starter fails every exercise"
    done
    echo "book: make docs with zero warnings"
    echo "book: pages, images and links in headless Chromium"
}

# book_grade NN: the three exercise checks of chapter NN
book_grade() {
    local nn=$1 n=$((10#$1)) ref name flags out rc n_ex files f
    ref=$(ls chapters/"$nn"_*.c | head -n 1)
    name=$(basename "$ref")
    if [ ! -x "$BUILD/ch$nn" ] || [ ! -e "$BUILD/obj/main.o" ]; then
        for c in "starter compiles without warnings" "unmodified chapter passes its grading" "blank starter fails every exercise"; do
            skip "book: ch$nn $c" "$BUILD/ch$nn not built"
        done
        return
    fi
    flags=$(make -s --no-print-directory grade-flags CH="$n" BUILD="$BUILD" CC="${CC:-cc}" WERROR=1)
    n_ex=$(bash tools/grade/grade.sh list | awk -v nn="$nn" '$1 == nn' | wc -l | tr -d ' ')

    # the chapter's source and any src/ file with exercises of this chapter (src/gguf.c for 5)
    files=$(bash tools/grade/grade.sh files "$n")
    rm -rf "$TMP/starter" "$TMP/solved" "$TMP/starter-cc"
    mkdir -p "$TMP/solved" "$TMP/starter-cc"
    cp $files "$TMP/solved/"
    if ! STUDENT=$TMP/starter bash tools/grade/grade.sh student "$n" >"$TMP/student.out" 2>&1; then
        bad "book: ch$nn starter compiles without warnings" "make student failed: $(tail -n 1 "$TMP/student.out")"
    else
        # compiled as the grader does: beside every header of src/, the starter's own in their place
        cp src/*.h "$TMP/starter-cc/" && cp "$TMP/starter"/* "$TMP/starter-cc/"
        rc=0
        for f in $files; do
            case $f in *.c) ${CC:-cc} $flags -c -o "$TMP/starter.o" "$TMP/starter-cc/$(basename "$f")" 2>>"$TMP/starter.err" || rc=1 ;; esac
        done
        if [ "$rc" -ne 0 ]; then
            bad "book: ch$nn starter compiles without warnings" "$(grep -m 2 -E 'warning|error' "$TMP/starter.err" | tr '\n' ' ')"
        else
            ok "book: ch$nn starter compiles without warnings"
        fi
        rm -f "$TMP/starter.err"
    fi

    CFLAGS=$flags CC=${CC:-cc} BUILD=$BUILD SHARED=$SHARED STUDENT=$TMP/solved bash tools/grade/grade.sh grade "$n" \
        >"$TMP/grade.out" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "^$n_ex of $n_ex exercises pass; the whole file passes" "$TMP/grade.out"; then
        ok "book: ch$nn unmodified chapter passes its grading ($n_ex exercises)"
    else
        bad "book: ch$nn unmodified chapter passes its grading" "exit $rc: $(grep -E '^(FAIL|error)' "$TMP/grade.out" | head -n 2 | tr '\n' ' ')"
    fi

    if [ ! -e "$TMP/starter/$name" ]; then
        bad "book: ch$nn blank starter fails every exercise" "no starter"
    else
        CFLAGS=$flags CC=${CC:-cc} BUILD=$BUILD SHARED=$SHARED STUDENT=$TMP/starter bash tools/grade/grade.sh grade "$n" \
            >"$TMP/grade.out" 2>&1
        rc=$?
        out=$(grep -c '^FAIL  exercise ' "$TMP/grade.out")
        if [ "$rc" -ne 1 ] || [ "$out" -ne "$n_ex" ] || ! grep -q '^FAIL  the whole file' "$TMP/grade.out"; then
            bad "book: ch$nn blank starter fails every exercise" "exit $rc, $out of $n_ex exercises fail: $(grep -E '^(ok|error)' "$TMP/grade.out" | head -n 2 | tr '\n' ' ')"
        elif grep -q 'does not compile' "$TMP/grade.out"; then
            bad "book: ch$nn blank starter fails every exercise" "it should compile and fail its checks: $(grep -m 1 'does not compile' "$TMP/grade.out")"
        else
            ok "book: ch$nn blank starter fails every exercise ($n_ex of $n_ex)"
        fi
    fi
}

book_docs() {
    if ! command -v doxygen >/dev/null; then
        skip "book: make docs with zero warnings" "doxygen is not installed"
        return 1
    fi
    if bash tools/book.sh --out "$TMP/book" >"$TMP/book.out" 2>"$TMP/book.err" && [ ! -s "$TMP/book.err" ]; then
        ok "book: make docs with zero warnings ($(ls "$TMP/book/html"/*.html | wc -l | tr -d ' ') HTML pages)"
        return 0
    fi
    bad "book: make docs with zero warnings" "$(head -n 3 "$TMP/book.err" | tr '\n' ' ')"
    return 1
}

book_browser() {
    local name="book: pages, images and links in headless Chromium" browser pid port pages p i
    browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
    if [ -z "$browser" ]; then skip "$name" "chromium is not installed (Debian: apt-get install chromium)"; return; fi
    if ! ${CC:-cc} -std=c11 -O1 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -o "$TMP/book_httpd" tests/book_httpd.c -lpthread \
        2>"$TMP/httpd.cc"; then
        bad "$name" "tests/book_httpd.c does not compile: $(head -n 2 "$TMP/httpd.cc" | tr '\n' ' ')"
        return
    fi
    mkdir -p "$TMP/site" "$TMP/chromium"
    cp tests/book_check.html "$TMP/site/check.html"
    ln -s "$TMP/book/html" "$TMP/site/book"
    "$TMP/book_httpd" "$TMP/site" 0 >"$TMP/httpd.port" 2>"$TMP/httpd.log" &
    pid=$!
    for i in $(seq 50); do [ -s "$TMP/httpd.port" ] && break; sleep 0.1; done
    port=$(awk '{ print $2 }' "$TMP/httpd.port")
    if [ -z "$port" ]; then
        kill "$pid" 2>/dev/null
        bad "$name" "the test server did not start: $(head -n 1 "$TMP/httpd.log")"
        return
    fi
    # every page of docs/ (the main page is index.html, the others are named by their {#id}),
    # and the generated index of the diff pages
    pages=index.html,diffs.html
    for p in docs/*.md; do
        id=$(sed -n '1s/^# .*{#\([A-Za-z0-9_]*\)} *$/\1/p' "$p")
        case $id in '' | mainpage) ;; *) pages="$pages,$id.html" ;; esac
    done
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
        --user-data-dir="$TMP/chromium" --virtual-time-budget=60000 \
        --dump-dom "http://127.0.0.1:$port/check.html?base=/book/&pages=$pages" >"$TMP/dom.html" 2>"$TMP/chromium.err"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    local result missing
    result=$(sed -n '/<pre id="result">/,/<\/pre>/p' "$TMP/dom.html" | sed -e 's/<[^>]*>//g' -e 's/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g')
    missing=$(grep '^404 ' "$TMP/httpd.log" | grep -v ' /favicon.ico$' | awk '{ print $2 }' | sort -u | head -n 5 | tr '\n' ' ')
    if [ -z "$result" ]; then
        bad "$name" "no result from the browser: $(tail -n 2 "$TMP/chromium.err" | tr '\n' ' ')"
    elif ! echo "$result" | head -n 1 | grep -q '^RESULT PASS'; then
        bad "$name" "$(echo "$result" | head -n 6 | tr '\n' ';')"
    elif [ -n "$missing" ]; then
        bad "$name" "the browser asked for missing files: $missing"
    else
        ok "$name: $(echo "$result" | head -n 1 | sed 's/^RESULT PASS //')"
    fi
}

if [ "$QUICK" = 1 ]; then
    skip "book: exercise grading, make docs and the browser test ($(book_names | wc -l | tr -d ' ') checks)" \
        "QUICK=1: checked once, in the main (gcc) stage"
else
    for nn in $(bash tools/grade/grade.sh list | awk '{ print $1 }' | sort -u); do
        book_grade "$nn"
    done
    if book_docs; then
        book_browser
    elif command -v doxygen >/dev/null; then
        skip "book: pages, images and links in headless Chromium" "no book to load: make docs failed"
    else
        skip "book: pages, images and links in headless Chromium" "no book to load: doxygen is not installed"
    fi
fi

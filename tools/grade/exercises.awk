# tools/grade/exercises.awk — reads the exercise markers of a chapter source.
#
# An exercise is a piece of a chapter that a student writes. In the source it is
# wrapped in two comments, which the compiler ignores:
#
#     static void rmsnorm(float *out, ...) {
#         /* EXERCISE 1.1 BEGIN: RMSNorm
#          * Task: what to write.
#          * Contract: what the caller relies on.
#          * Hint: a nudge.                       (optional)
#          * Graded: what the grader checks too.  (optional; a probe, say)
#          * Stub: (void)out; (void)x; ...        C that stands in for the body in the
#          */                                       starter, so that it compiles cleanly
#         ...the body: the part the student writes...
#         /* EXERCISE 1.1 END */
#     }
#
# "1.1" is chapter.exercise: a chapter's file carries the markers of earlier chapters
# too (chapter 2 is chapter 1's code plus a cache, markers included, so that
# `make diff N=2` stays clean), and only the exercises of its own chapter count.
# An exercise may have several regions (parts), each with its own BEGIN/END pair;
# the first one's comment carries the fields.
#
# Modes (-v mode=...; -v ch=N selects the chapter, default: every exercise; -v only=N.k
# selects one exercise):
#   list     one line per exercise: id, name, its function, that function's line, parts
#   starter  the file with each selected body replaced by its stub (each part has its own)
#   hybrid   two files, STUDENT then REFERENCE, -v id=X: the reference with exercise X's
#            bodies taken from the student's file, with #line directives (-v student_name,
#            -v ref_name) so that compiler messages point into the student's file
#   docs     markdown, one section per selected exercise (-v srcpage=: the annotated source
#            page the links point into)
# Errors go to stderr as "error: FILE:LINE: why", with exit status 1.

function fail(msg) { printf "error: %s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"; failed = 1; exit 1 }
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function selected(x) { return (ch == "" || x ~ ("^" (ch + 0) "\\.")) && (only == "" || x == only) }

# Markdown for Doxygen: no stray HTML, no auto-links to a same-named function of another chapter.
function md(s) {
    gsub(/</, "\\<", s); gsub(/>/, "\\>", s)
    out = ""
    while (match(s, /[A-Za-z_][A-Za-z_0-9]*\(/)) {
        out = out substr(s, 1, RSTART - 1) "%" substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

BEGIN { state = 0; nfile = 0 }
FNR == 1 { nfile++; state = 0 }

# A function definition at the left margin names the function the next region is in.
state == 0 && /^[A-Za-z].*[A-Za-z_0-9]+\(.*\) *\{ *$/ {
    f = $0; sub(/\(.*/, "", f); n = split(f, w, /[ *]+/); func_name = w[n]; func_line = FNR
}

state == 0 && /\/\* EXERCISE [0-9]+\.[0-9]+ END/ { fail("END without BEGIN") }
state == 0 && /\/\* EXERCISE [0-9]+\.[0-9]+ BEGIN/ {
    t = $0; sub(/.*\/\* EXERCISE /, "", t)
    cur = t; sub(/ .*/, "", cur)
    title = t; sub(/^[0-9.]+ BEGIN:? */, "", title); closed = sub(/\*\/ *$/, "", title); title = trim(title)
    indent = $0; sub(/\/\*.*/, "", indent)
    key = nfile SUBSEP cur
    part[key]++; p = part[key]
    if (p == 1 && nfile == 1 && !(cur in seen)) {
        seen[cur] = 1; order[++n_ex] = cur; name[cur] = title; where[cur] = func_name; func_at[cur] = func_line
    }
    field = ""; begin_text = $0 "\n"
    state = closed ? 2 : 1
    body = ""; body_line = FNR + 1
    next
}
state == 1 {
    begin_text = begin_text $0 "\n"
    if ($0 ~ /\*\//) { state = 2; body_line = FNR + 1; next }
    t = $0; sub(/^[ \t]*\*[ \t]?/, "", t)
    if (t ~ /^[A-Z][a-z]+:/) { field = substr(t, 1, index(t, ":") - 1); val = trim(substr(t, index(t, ":") + 1)) }
    else if (field != "") { val = trim(t) } else { next }
    if (field == "Stub") stubs[cur, p] = trim(stubs[cur, p] " " val)
    if (nfile == 1 && part[nfile SUBSEP cur] == 1) fields[cur, field] = trim(fields[cur, field] " " val)
    # the starter keeps the comment but not the Stub lines (they become code)
    if (field == "Stub") begin_text = substr(begin_text, 1, length(begin_text) - length($0) - 1)
    next
}
state == 2 && /\/\* EXERCISE [0-9]+\.[0-9]+ BEGIN/ { fail("a BEGIN marker before the END of exercise " cur) }
state == 2 && /\/\* EXERCISE [0-9]+\.[0-9]+ END/ {
    t = $0; sub(/.*\/\* EXERCISE /, "", t); sub(/ .*/, "", t)
    if (t != cur) fail("END of " t " inside exercise " cur)
    key = nfile SUBSEP cur SUBSEP part[nfile SUBSEP cur]
    bodies[key] = body; body_at[key] = body_line
    state = 0
    if (mode == "starter" && selected(cur)) {
        printf "%s", begin_text
        s = stubs[cur, p]
        printf "%s%s%s/* your code here */\n", indent, s, s == "" ? "" : " "
        print; next
    }
    if (mode == "starter") { printf "%s%s", begin_text, body; print; next }
    if (mode == "hybrid" && nfile == 2 && cur == id) {
        sk = 1 SUBSEP cur SUBSEP part[2 SUBSEP cur]
        if (!(sk in bodies)) {
            printf "error: the EXERCISE %s BEGIN/END comments are missing from %s (keep them around your code)\n",
                id, student_name > "/dev/stderr"
            failed = 1; exit 1
        }
        printf "%s#line %d \"%s\"\n%s#line %d \"%s\"\n", begin_text, body_at[sk], student_name, bodies[sk], FNR, ref_name
        print; next
    }
    if (mode == "hybrid" && nfile == 2) { printf "%s%s", begin_text, body; print; next }
    next
}
state == 2 { body = body $0 "\n"; next }
state == 1 || state == 2 { next }
mode == "starter" || (mode == "hybrid" && nfile == 2) { print }

END {
    if (failed) exit 1
    if (state != 0) { printf "error: %s: exercise %s has no END marker\n", FILENAME, cur > "/dev/stderr"; exit 1 }
    if (mode == "hybrid") {
        if (part[1 SUBSEP id] != part[2 SUBSEP id]) {
            printf "error: exercise %s: %s has %d region(s) for it, %s has %d (keep its BEGIN/END comments)\n",
                id, student_name, part[1 SUBSEP id] + 0, ref_name, part[2 SUBSEP id] + 0 > "/dev/stderr"
            exit 1
        }
        exit 0
    }
    for (i = 1; i <= n_ex; i++) {
        x = order[i]
        if (!selected(x)) continue
        if (mode == "list") printf "%s\t%s\t%s\t%d\t%d\n", x, name[x], where[x], func_at[x], part[1 SUBSEP x]
        if (mode == "docs") {
            printf "### Exercise %s: %s\n\n", x, md(name[x])
            more = part[1 SUBSEP x] > 1 ? sprintf(" (and %d more places)", part[1 SUBSEP x] - 1) : ""
            printf "In <a href=\"%s#l%05d\">%s()</a>%s.\n\n", srcpage, func_at[x], where[x], more
            printf "- **What to implement.** %s\n", md(fields[x, "Task"])
            if ((x, "Contract") in fields) printf "- **Contract.** %s\n", md(fields[x, "Contract"])
            if ((x, "Hint") in fields) printf "- **Hint.** %s\n", md(fields[x, "Hint"])
            printf "- **What the grader checks.** %s\n\n", ((x, "Graded") in fields) ? md(fields[x, "Graded"]) : "The logits and the greedy ids, as above."
        }
    }
}

#!/usr/bin/env bash
# tools/bench_svg.sh — the progression table of a bench report (markdown, on stdin: what
# tools/bench.sh writes, or the rows of it that tools/book.sh takes for one chapter) as an SVG
# bar chart of decode tok/s: one group of bars per row, one bar per "decode tok/s, ..." column
# (one thread, all threads), on a logarithmic axis (the chapters differ by orders of
# magnitude). Only the first table after the "<!-- bench:progression -->" line is read (the
# first table of the input if there is no such line), and only its rows whose first cell names
# a chapter (chNN); a cell without a number ("—", "failed") draws no bar.
# No dependencies beyond awk; tools/bench.sh --out DIR calls it.
awk -F'|' '
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
function trim(s) { gsub(/^ +| +$/, "", s); return s }
NR == 1 && /^Measured/ { title = esc($0) }
/^<!-- bench:progression -->/ { marked = 1; want = 1; next }
/^<!-- bench:/ { if (marked) want = 0; next }
state == 2 && !/^\|/ { state = 3 }
state == 3 || (marked && !want) { next }
/^\|/ && state == 0 {
    for (i = 2; i < NF; i++) if (trim($i) ~ /^decode tok\/s/) { col[++ncol] = i; s = trim($i); sub(/^decode tok\/s,? */, "", s); legend[ncol] = esc(s) }
    state = 1; next
}
/^\|---/ && state == 1 { state = 2; next }
/^\|/ && state == 2 && trim($2) ~ /^ch[0-9]+$/ {
    n++
    label[n] = esc(trim($2) " " trim($3))
    for (c = 1; c <= ncol; c++) {
        v = trim($(col[c])); sub(/ .*/, "", v)
        value[n, c] = (v ~ /^[0-9.]+$/) ? v + 0 : -1
        if (value[n, c] > max) max = value[n, c]
        if (value[n, c] > 0 && (min == "" || value[n, c] < min)) min = value[n, c]
    }
}
END {
    if (n == 0 || ncol == 0) { print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">no data</text></svg>"; exit }
    left = 200; width = 520; bar = 12; gap = 10; top = 70
    lo = 0; while (min != "" && 10 ^ lo > min) lo--   # the axis starts at the decade below the slowest
    decades = 1; while (10 ^ (lo + decades) < max) decades++
    group = ncol * bar
    height = top + n * (group + gap) + 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 90, height
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Decode speed, tokens per second (log scale)</text>\n"
    printf "<text x=\"10\" y=\"38\" fill=\"#555\">%s</text>\n", title
    split("#4e79a7 #f28e2b #59a14f #e15759", colour, " ")
    for (c = 1; c <= ncol; c++) {
        x = left + (c - 1) * 150
        printf "<rect x=\"%d\" y=\"48\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"58\">%s</text>\n", x, colour[(c - 1) % 4 + 1], x + 16, legend[c]
    }
    for (d = 0; d <= decades; d++) {
        x = left + width * d / decades
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top - 4, x, top + n * (group + gap)
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, top + n * (group + gap) + 16, 10 ^ (lo + d)
    }
    for (i = 1; i <= n; i++) {
        y = top + (i - 1) * (group + gap)
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + group / 2 + 4, label[i]
        for (c = 1; c <= ncol; c++) {
            if (value[i, c] <= 0) continue
            v = log(value[i, c]) / log(10) - lo; if (v < 0) v = 0
            w = width * v / decades
            printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y + (c - 1) * bar, w, bar - 1, colour[(c - 1) % 4 + 1]
            printf "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%g</text>\n", left + w + 4, y + (c - 1) * bar + bar - 2, value[i, c]
        }
    }
    print "</svg>"
}'

#!/usr/bin/env bash
# tools/bench_svg.sh — the bench table (markdown, on stdin) as an SVG bar chart of decode
# tok/s, one bar per row, on a logarithmic axis (the chapters differ by orders of magnitude).
# No dependencies beyond awk; tools/bench.sh --out DIR calls it.
awk -F'|' '
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
/^\| [^-]/ && $3 ~ /^ *[0-9]+ *$/ && $7 ~ /[0-9]/ {
    n++
    label[n] = esc(sprintf("%s ch%s t%s n=%s", $2, $3, $4, $5))
    gsub(/ /, "", $7); value[n] = $7 + 0
    if (value[n] > max) max = value[n]
    gsub(/ /, "", $3); chapter[n] = $3 + 0
}
/^Measured/ { title = esc($0) }
END {
    if (n == 0) { print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">no data</text></svg>"; exit }
    left = 230; width = 520; bar = 18; gap = 6; top = 50
    decades = 1; while (10 ^ decades < max) decades++
    height = top + n * (bar + gap) + 40
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 90, height
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Decode speed, tokens per second (log scale)</text>\n"
    printf "<text x=\"10\" y=\"38\" fill=\"#555\">%s</text>\n", title
    split("#4e79a7 #f28e2b #e15759 #76b7b2 #59a14f #edc948 #b07aa1 #ff9da7", colour, " ")
    for (d = 0; d <= decades; d++) {
        x = left + width * d / decades
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top - 4, x, top + n * (bar + gap)
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, top + n * (bar + gap) + 16, 10 ^ d
    }
    for (i = 1; i <= n; i++) {
        y = top + (i - 1) * (bar + gap)
        v = value[i] > 1 ? log(value[i]) / log(10) : 0
        w = width * v / decades
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left - 8, y + bar - 5, label[i]
        printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", left, y, w, bar, colour[(chapter[i] - 1) % 8 + 1]
        printf "<text x=\"%.1f\" y=\"%d\">%g</text>\n", left + w + 4, y + bar - 5, value[i]
    }
    print "</svg>"
}'

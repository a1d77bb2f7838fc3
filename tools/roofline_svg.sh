#!/usr/bin/env bash
# tools/roofline_svg.sh — the roofline table of a bench report (markdown on stdin: what
# tools/bench.sh writes) as an SVG chart, both axes logarithmic: arithmetic intensity (FLOP
# per weight byte) across, GFLOP/s up. Per thread count (1 thread dashed, all threads solid)
# one roof: memory bandwidth times intensity (build/membw) up to the int8 multiply-add peak
# (build/peak), flat from there on; the fp32 peak is a dotted line of its own. The points
# (a chapter's decode or prompt processing, llama.cpp's) sit at their measured GFLOP/s:
# hollow with 1 thread, filled with all. A point's height under its roof is how much of the
# machine it leaves unused.
#
# Only the tables after the "<!-- bench:roofline -->" line are read, up to the next
# "<!-- bench:" line: the roofs (rows "memory ...", "int8 ...", "fp32 ...", a column per thread
# count) and the points (point | threads | FLOP/byte | GFLOP/s | ...). Without them the SVG
# says "no data". No dependencies beyond awk; tools/bench.sh --out DIR calls it.
awk -F'|' '
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); return s }
function trim(s) { gsub(/^ +| +$/, "", s); return s }
function num(s) { return s ~ /^[0-9.]+$/ && s + 0 > 0 }
function lg(v) { return log(v) / log(10) }
function px(v) { return left + width * (lg(v) - xlo) / (xhi - xlo) }
function py(v) { return top + height * (yhi - lg(v)) / (yhi - ylo) }
NR == 1 && /^Measured/ { title = esc($0) }
/^<!-- bench:roofline -->/ { on = 1; next }
/^<!-- bench:/ { on = 0; next }
!on || !/^\|/ || /^\|---/ { next }
trim($2) == "roof" { for (i = 3; i < NF; i++) { t = trim($i); sub(/ .*/, "", t); threads[i - 2] = t; nthr = i - 2 }; next }
trim($2) == "point" { next }
trim($2) ~ /^memory/ { for (i = 1; i <= nthr; i++) bw[i] = trim($(i + 2)); next }
trim($2) ~ /^int8/ { for (i = 1; i <= nthr; i++) i8[i] = trim($(i + 2)); next }
trim($2) ~ /^fp32/ { for (i = 1; i <= nthr; i++) f32[i] = trim($(i + 2)); next }
NF >= 6 && num(trim($4)) && num(trim($5)) {
    n++; name[n] = esc(trim($2)); pthr[n] = trim($3); pi[n] = trim($4) + 0; pg[n] = trim($5) + 0
    if (!(name[n] in series)) { series[name[n]] = ++nseries; sname[nseries] = name[n] }
}
END {
    if (nthr == 0 || n == 0) { print "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"40\"><text x=\"10\" y=\"25\">no data</text></svg>"; exit }
    # the ranges: every point, and every roof'\''s corner (the ridge, where bandwidth meets the peak)
    xmin = xmax = pi[1]; ymin = ymax = pg[1]
    for (i = 1; i <= n; i++) { if (pi[i] < xmin) xmin = pi[i]; if (pi[i] > xmax) xmax = pi[i]; if (pg[i] < ymin) ymin = pg[i]; if (pg[i] > ymax) ymax = pg[i] }
    for (t = 1; t <= nthr; t++) {
        if (num(i8[t]) && i8[t] + 0 > ymax) ymax = i8[t] + 0
        if (num(f32[t]) && f32[t] + 0 > ymax) ymax = f32[t] + 0
        if (num(i8[t]) && num(bw[t]) && i8[t] / bw[t] > xmax) xmax = i8[t] / bw[t]
    }
    xlo = int(lg(xmin) + 100) - 100; xhi = int(lg(xmax * 2) + 100.999) - 100
    if (xhi <= xlo) xhi = xlo + 1
    # the bandwidth roof must show at the left edge
    for (t = 1; t <= nthr; t++) if (num(bw[t]) && bw[t] * 10 ^ xlo < ymin) ymin = bw[t] * 10 ^ xlo
    ylo = int(lg(ymin) + 100) - 100; yhi = int(lg(ymax * 1.5) + 100.999) - 100
    if (yhi <= ylo) yhi = ylo + 1
    left = 80; top = 70; width = 560; height = 400
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", left + width + 220, top + height + 60
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Roofline: GFLOP/s of the matrix multiplications against FLOP per weight byte (log-log)</text>\n"
    printf "<text x=\"10\" y=\"38\" fill=\"#555\">%s</text>\n", title
    # the decades
    for (d = xlo; d <= xhi; d++) {
        x = left + width * (d - xlo) / (xhi - xlo)
        printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, top, x, top + height
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, top + height + 16, 10 ^ d
    }
    for (d = ylo; d <= yhi; d++) {
        y = top + height * (yhi - d) / (yhi - ylo)
        printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left + width, y
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%g</text>\n", left - 6, y + 4, 10 ^ d
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">arithmetic intensity, FLOP per weight byte</text>\n", left + width / 2, top + height + 36
    printf "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">GFLOP/s</text>\n", top + height / 2, top + height / 2
    printf "<clipPath id=\"plot\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath>\n", left, top, width, height
    # the roofs: bandwidth up to the int8 peak, then flat; fp32 dotted
    x0 = 10 ^ xlo; x1 = 10 ^ xhi
    for (t = 1; t <= nthr; t++) {
        dash = (threads[t] == 1 && nthr > 1) ? " stroke-dasharray=\"6 4\"" : ""
        if (num(bw[t])) {
            xr = num(i8[t]) ? i8[t] / bw[t] : x1; if (xr > x1) xr = x1
            printf "<polyline clip-path=\"url(#plot)\" fill=\"none\" stroke=\"#333\" stroke-width=\"2\"%s points=\"%.1f,%.1f %.1f,%.1f", dash, px(x0), py(bw[t] * x0), px(xr), py(bw[t] * xr)
            if (num(i8[t])) printf " %.1f,%.1f", px(x1), py(i8[t])
            printf "\"/>\n"
            # along the line: the label of the last thread count above it, the others below
            lx0 = px(x0 * 1.3) + (t == nthr ? -4 : 8); ly0 = py(bw[t] * x0 * 1.3) + (t == nthr ? -5 : 5)
            printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#333\" transform=\"rotate(%.1f %.1f %.1f)\">%s GB/s, %s thread%s</text>\n", lx0, ly0, -atan2(height / (yhi - ylo), width / (xhi - xlo)) * 180 / 3.14159265, lx0, ly0, bw[t], threads[t], (threads[t] == 1 ? "" : "s")
        }
        if (num(i8[t])) printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" fill=\"#333\">int8 peak %s GOP/s, %s thread%s</text>\n", left + width - 4, py(i8[t]) - 4, i8[t], threads[t], (threads[t] == 1 ? "" : "s")
        if (num(f32[t])) {
            printf "<line clip-path=\"url(#plot)\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"2 3\"/>\n", (num(bw[t]) ? px(f32[t] / bw[t]) : left), py(f32[t]), px(x1), py(f32[t])
            printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" fill=\"#888\">fp32 peak %s GFLOP/s, %s thread%s</text>\n", left + width - 4, py(f32[t]) + 12, f32[t], threads[t], (threads[t] == 1 ? "" : "s")
        }
    }
    # the points, and their legend
    split("#4e79a7 #f28e2b #59a14f #e15759 #b07aa1 #76b7b2", colour, " ")
    for (i = 1; i <= n; i++) {
        c = colour[(series[name[i]] - 1) % 6 + 1]
        fill = (pthr[i] == 1 && nthr > 1) ? "white" : c
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>%s, %s thread(s): %g FLOP/byte, %g GFLOP/s</title></circle>\n", px(pi[i]), py(pg[i]), fill, c, name[i], pthr[i], pi[i], pg[i]
    }
    lx = left + width + 20
    printf "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">points</text>\n", lx, top + 4
    for (k = 1; k <= nseries; k++) {
        c = colour[(k - 1) % 6 + 1]; y = top + 8 + 18 * k
        printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", lx + 6, y - 4, c, lx + 18, y, sname[k]
    }
    y = top + 8 + 18 * (nseries + 1)
    if (nthr > 1) {
        printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"white\" stroke=\"#555\" stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">1 thread (roof dashed)</text>\n", lx + 6, y - 4, lx + 18, y
        printf "<circle cx=\"%d\" cy=\"%d\" r=\"5\" fill=\"#555\"/><text x=\"%d\" y=\"%d\">%s threads</text>\n", lx + 6, y + 14, lx + 18, y + 18, threads[nthr]
    }
    print "</svg>"
}'

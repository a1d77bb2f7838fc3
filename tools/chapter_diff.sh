#!/usr/bin/env bash
# tools/chapter_diff.sh N — what chapter N adds to chapter N-1: `make diff N=...` and the
# book's diff pages (tools/book.sh).
#
# A chapter's idea is its source file plus the files it introduces (the "introduces" column of
# chapters/chapters.tsv: its kernels, its file reader, its thread pool). So the output is the
# unified diff from chapter N-1's source to chapter N's, then each introduced file as a new file
# (a diff from /dev/null). Exit status 0 whether or not anything differs; 2 on a bad N.
set -u
cd "$(dirname "$0")/.."
n=${1:-}
case $n in '' | *[!0-9]*) echo "error: N=$n: expected a chapter number" >&2; exit 2 ;; esac
nn=$(printf %02d "$((10#$n))") pp=$(printf %02d "$((10#$n - 1))")
new=$(ls chapters/"$nn"_*.c 2>/dev/null | head -n 1)
old=$(ls chapters/"$pp"_*.c 2>/dev/null | head -n 1)
[ -n "$new" ] || { echo "error: N=$n: there is no chapters/${nn}_*.c" >&2; exit 2; }
[ -n "$old" ] || { echo "error: N=$n: chapter $n has no chapter before it to compare with" >&2; exit 2; }
diff -u "$old" "$new"
[ $? -le 1 ] || exit 2
files=$(awk -F '\t' -v ch="$nn" '$1 == ch && $4 != "-" { gsub(",", " ", $4); print $4 }' chapters/chapters.tsv)
for f in $files; do
    [ -e "$f" ] || { echo "error: chapters/chapters.tsv: chapter $nn introduces $f, which does not exist" >&2; exit 2; }
    diff -u --label /dev/null --label "$f" /dev/null "$f"
    [ $? -le 1 ] || exit 2
done
exit 0

/**
 * @file mkunicode.c
 * @brief Generate src/unicode_table.h, the Unicode character classes of the
 * byte-level BPE pre-tokenizers, from the Unicode Character Database.
 *
 *     build/mkunicode [UCD_DIR] > src/unicode_table.h     (UCD_DIR: /usr/share/unicode)
 *
 * The pre-tokenizers of byte-level BPE vocabularies (src/bpe.c) cut text into
 * words by character class: a run of letters (the regex class \\p{L}), of
 * numbers (\\p{N}), of white space (\\s), of punctuation (\\p{P}) or of
 * anything else. The classes are Unicode's general categories, read here from
 * UnicodeData.txt (Debian's package unicode-data installs it), and white space is
 * the White_Space property of PropList.txt, which is also what the tokenizers'
 * \\s means for code points above ASCII.
 *
 * Which Unicode version: the reference tokenizer (llama.cpp) was built with
 * the tables of Unicode 15.1, and a code point that a later version assigns is
 * "unassigned" there: a class of its own. This tool always produces the 15.1
 * classes. From the data of 15.0 (Debian 12) it adds the 627 code points that
 * 15.1 assigned (three ranges, listed below); from later data it drops, with
 * DerivedAge.txt, the code points assigned after 15.1. So the same table comes
 * out of any version from 15.0 on, as long as later versions do not move an
 * old code point to another category (Unicode's stability policy allows that
 * rarely; a regenerated table that differs shows it).
 *
 * Output: the classes of all 0x110000 code points as ranges, one 32-bit
 * entry per range (start << 4 | class), about 2300 entries; a range ends
 * where the next starts. Plus a direct table of the first 256 code points,
 * the common case. tests/unit_bpe.c regenerates the table when the Unicode
 * files are installed and checks that it equals the one in src/.
 * Cost: reads about 2 MB of text, a fraction of a second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define N_CODEPOINTS 0x110000

/* The classes, as src/bpe.c reads them: a general category in the low three
 * bits, white space as a flag beside it. */
enum { UC_UNASSIGNED, UC_LETTER, UC_NUMBER, UC_SEPARATOR, UC_MARK, UC_PUNCTUATION, UC_SYMBOL, UC_CONTROL };
enum { UC_SPACE = 8 };

/** The code points that Unicode 15.1 assigned, which 15.0's files lack. */
static const struct {
    unsigned first, last;
    int cls;
} added_in_15_1[] = {
    {0x2FFC, 0x2FFF, UC_SYMBOL},   /* ideographic description characters (So) */
    {0x31EF, 0x31EF, UC_SYMBOL},   /* a CJK stroke (So) */
    {0x2EBF0, 0x2EE5D, UC_LETTER}, /* CJK Unified Ideographs Extension I (Lo) */
};

typedef struct {
    int major, minor;
} Version;

static int version_after(Version a, Version b) { return a.major != b.major ? a.major > b.major : a.minor > b.minor; }

/** The class of general category @p gc (two letters: "Lu", "Nd", ...). */
static int class_of_category(const char *gc, const char *path, long line) {
    switch (gc[0]) {
    case 'L': return UC_LETTER;
    case 'N': return UC_NUMBER;
    case 'Z': return UC_SEPARATOR;
    case 'M': return UC_MARK;
    case 'P': return UC_PUNCTUATION;
    case 'S': return UC_SYMBOL;
    case 'C': return gc[1] == 'n' ? UC_UNASSIGNED : UC_CONTROL;
    default: fatal("%s:%ld: general category \"%s\" is not one of Unicode's", path, line, gc);
    }
}

static FILE *open_ucd(const char *dir, const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) fatal("%s: cannot open (Debian's package unicode-data installs it)", path);
    return f;
}

/** A code point field (hex), checked. */
static unsigned parse_cp(const char *s, char **end, const char *path, long line) {
    unsigned long v = strtoul(s, end, 16);
    if (*end == s || v >= N_CODEPOINTS) fatal("%s:%ld: \"%.12s\" is not a code point", path, line, s);
    return (unsigned)v;
}

/** A "XXXX" or "XXXX..YYYY" field at the start of @p s. */
static void parse_range(const char *s, unsigned *first, unsigned *last, const char *path, long line) {
    char *end;
    *first = *last = parse_cp(s, &end, path, line);
    if (end[0] == '.' && end[1] == '.') *last = parse_cp(end + 2, &end, path, line);
    if (*last < *first) fatal("%s:%ld: the range ends before it starts", path, line);
}

/** General categories from UnicodeData.txt: one line per code point, or a
 * pair of lines "<Name, First>" and "<Name, Last>" for a whole range. */
static void read_categories(const char *dir, unsigned char *cls) {
    char path[4096], line[1024];
    FILE *f = open_ucd(dir, "UnicodeData.txt", path, sizeof path);
    long n = 0;
    unsigned range_first = N_CODEPOINTS;
    while (fgets(line, sizeof line, f)) {
        n++;
        char *name = strchr(line, ';'), *gc = name ? strchr(name + 1, ';') : NULL, *end;
        if (!gc || !strchr(gc + 1, ';') || strchr(gc + 1, ';') - gc != 3) fatal("%s:%ld: not a UnicodeData line", path, n);
        unsigned cp = parse_cp(line, &end, path, n);
        char category[3] = {gc[1], gc[2], 0};
        int c = class_of_category(category, path, n);
        if (strstr(name, ", First>;")) {
            range_first = cp;
            continue;
        }
        unsigned first = cp;
        if (strstr(name, ", Last>;")) {
            if (range_first > cp) fatal("%s:%ld: a range's last line without its first", path, n);
            first = range_first;
            range_first = N_CODEPOINTS;
        }
        for (unsigned k = first; k <= cp; k++) cls[k] = (unsigned char)c;
    }
    fclose(f);
    if (n == 0) fatal("%s: empty", path);
}

/** White_Space from PropList.txt, and the version from its first line ("# PropList-15.0.0.txt"). */
static Version read_white_space(const char *dir, unsigned char *cls) {
    char path[4096], line[1024];
    FILE *f = open_ucd(dir, "PropList.txt", path, sizeof path);
    Version v = {0, 0};
    long n = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (n == 1 && sscanf(line, "# PropList-%d.%d", &v.major, &v.minor) != 2)
            fatal("%s: the first line does not name the Unicode version", path);
        char *semi = strchr(line, ';');
        if (line[0] == '#' || !semi) continue;
        if (strncmp(semi + 1, " White_Space ", 13) != 0 && strncmp(semi + 1, " White_Space#", 13) != 0) continue;
        unsigned first, last;
        parse_range(line, &first, &last, path, n);
        for (unsigned k = first; k <= last; k++) cls[k] |= UC_SPACE;
        found++;
    }
    fclose(f);
    if (!found) fatal("%s: no White_Space lines", path);
    return v;
}

/** Forget the code points that versions after @p keep assigned (DerivedAge.txt: "XXXX..YYYY ; 16.0 #"). */
static void drop_newer(const char *dir, Version keep, unsigned char *cls) {
    char path[4096], line[1024];
    FILE *f = open_ucd(dir, "DerivedAge.txt", path, sizeof path);
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        char *semi = strchr(line, ';');
        Version age;
        if (line[0] == '#' || !semi) continue;
        if (sscanf(semi + 1, " %d.%d", &age.major, &age.minor) != 2) fatal("%s:%ld: no version after ';'", path, n);
        if (!version_after(age, keep)) continue;
        unsigned first, last;
        parse_range(line, &first, &last, path, n);
        for (unsigned k = first; k <= last; k++) cls[k] = 0; /* neither a category nor White_Space */
    }
    fclose(f);
}

static void print_header(int n_ranges) {
    printf("/**\n"
           " * @file unicode_table.h\n"
           " * @brief Unicode character classes for the BPE pre-tokenizers: GENERATED by tools/mkunicode.c\n"
           " * from the Unicode Character Database (UnicodeData.txt, PropList.txt), as of Unicode 15.1; do not edit.\n"
           " *\n"
           " * A class is a general category (the low three bits: UC_LETTER, UC_NUMBER, ...) plus\n"
           " * UC_SPACE for White_Space. unicode_ranges holds %d ranges, each entry start << 4 | class;\n"
           " * a range ends where the next starts, the last at U+10FFFF. unicode_latin1 repeats the\n"
           " * classes of U+0000..U+00FF for a direct look-up.\n"
           " */\n"
           "#ifndef LLAMABOOK_UNICODE_TABLE_H\n"
           "#define LLAMABOOK_UNICODE_TABLE_H\n\n"
           "#include <stdint.h>\n\n"
           "/** The Unicode version whose assignments the classes follow. */\n"
           "#define UNICODE_TABLE_VERSION \"15.1\"\n\n"
           "/** General categories (the low three bits of a class). */\n"
           "enum { UC_UNASSIGNED, UC_LETTER, UC_NUMBER, UC_SEPARATOR, UC_MARK, UC_PUNCTUATION, UC_SYMBOL, UC_CONTROL };\n"
           "/** The White_Space flag of a class. */\n"
           "enum { UC_SPACE = 8, UC_CATEGORY = 7 };\n\n",
           n_ranges);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/usr/share/unicode";
    if (argc > 2) fatal("usage: mkunicode [UCD_DIR] > src/unicode_table.h");
    unsigned char *cls = xcalloc(N_CODEPOINTS, 1);
    read_categories(dir, cls);
    Version data = read_white_space(dir, cls);
    const Version v15_1 = {15, 1};
    if (data.major < 15)
        fatal("%s: Unicode %d.%d is older than 15.0, which this tool starts from", dir, data.major, data.minor);
    if (data.major == 15 && data.minor == 0)
        for (size_t r = 0; r < sizeof added_in_15_1 / sizeof added_in_15_1[0]; r++)
            for (unsigned k = added_in_15_1[r].first; k <= added_in_15_1[r].last; k++)
                cls[k] = (unsigned char)added_in_15_1[r].cls;
    if (version_after(data, v15_1)) drop_newer(dir, v15_1, cls);
    int n_ranges = 0;
    for (unsigned cp = 0; cp < N_CODEPOINTS; cp++) n_ranges += cp == 0 || cls[cp] != cls[cp - 1];
    print_header(n_ranges);
    printf("/** (%d) start << 4 | class of each range, by start. */\n", n_ranges);
    printf("static const uint32_t unicode_ranges[%d] = {", n_ranges);
    int k = 0;
    for (unsigned cp = 0; cp < N_CODEPOINTS; cp++) {
        if (cp > 0 && cls[cp] == cls[cp - 1]) continue;
        printf("%s0x%07X,", k++ % 8 == 0 ? "\n    " : " ", cp << 4 | cls[cp]);
    }
    printf("\n};\n\n/** (256) the class of each of U+0000..U+00FF. */\nstatic const unsigned char unicode_latin1[256] = {");
    for (unsigned cp = 0; cp < 256; cp++) printf("%s%2u,", cp % 16 == 0 ? "\n    " : " ", cls[cp]);
    printf("\n};\n\n#endif\n");
    if (fflush(stdout) != 0 || ferror(stdout)) fatal("writing the table failed");
    free(cls);
    return 0;
}

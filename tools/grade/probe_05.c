/*
 * tools/grade/probe_05.c — what the logits cannot show about chapter 5's exercises.
 *
 * The Q4_0 dequantizer only decodes the token embedding of a Q4_0 file (the
 * matmuls use SIMD kernels of their own), and a GGUF reader that reads the
 * model's own file correctly may still trust a malformed one: read past its end,
 * loop 2^60 times over an array count, or accept an array of arrays. So the
 * grader also builds this probe around the files being graded (#include
 * GRADE_SOURCE for the chapter and src/quants.h; the student's src/gguf.c is
 * linked in) and checks:
 *
 *  - unpack_q4_0() and dequant_q4_0() (exercise 5.1) on hand-made blocks: one
 *    nibble at a time (which weight each nibble is), all sixteen values, a
 *    negative scale, a row of several blocks, against ggml's
 *    dequantize_row_q4_0 (transcribed below); and that the plain-C Q4_0 dot
 *    product, which unpacks with unpack_q4_0(), equals the SIMD one bit for bit;
 *  - the GGUF readers (exercise 5.2) through gguf_parse(), on hand-made buffers
 *    that end right before a page that may not be read: valid strings and arrays
 *    read back right; each malformed buffer is refused with an error, and without
 *    a crash or an endless loop (each runs in a child process, with a time limit).
 *
 * usage: probe_05 MODEL [THREADS]   (prints "ok    NAME" or "FAIL  NAME: why" lines)
 */
#include GRADE_SOURCE

#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void result(const char *name, int pass, const char *why) {
    if (pass) printf("ok    %s\n", name);
    else printf("FAIL  %s: %s\n", name, why);
    fflush(stdout);
    failures += !pass;
}

static uint32_t rnd_state = 2024;
static uint32_t rnd_u32(void) { return rnd_state = rnd_state * 1664525u + 1013904223u; }

/* --- 5.1: the Q4_0 block ------------------------------------------------------------ */

/** ggml's dequantize_row_q4_0 (ggml-quants.c), in its own words. */
static void reference_q4_0(const BlockQ4_0 *x, float *y, int k) {
    const int nb = k / QK;
    for (int i = 0; i < nb; i++) {
        const float d = fp16_to_float(x[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK + j + 0] = x0 * d;
            y[i * QK + j + QK / 2] = x1 * d;
        }
    }
}

/** dequant_q4_0() of @p nb blocks against the reference; the first difference in @p why. */
static int dequant_ok(const BlockQ4_0 *blocks, int nb, char *why, size_t len) {
    float got[4 * QK + 1], want[4 * QK];
    const float canary = 12345.0f;
    got[nb * QK] = canary;
    dequant_q4_0(blocks, got, nb * QK);
    reference_q4_0(blocks, want, nb * QK);
    for (int i = 0; i < nb * QK; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
            int b = i / QK, j = i % QK;
            snprintf(why, len, "dequant_q4_0(): weight %d of block %d is %g, expected %g (the %s nibble of qs[%d])", j, b,
                     (double)got[i], (double)want[i], j < QK / 2 ? "low" : "high", j % (QK / 2));
            return 0;
        }
    if (got[nb * QK] != canary) {
        snprintf(why, len, "dequant_q4_0(): it wrote past the %d values of the row", nb * QK);
        return 0;
    }
    return 1;
}

static void check_q4_0(void) {
    BlockQ4_0 b[4];
    char why[300] = "";
    int8_t q[QK];

    /* one nibble at a time: 15 (quant 7) in one place, 8 (quant 0) everywhere else */
    for (int w = 0; w < QK && !why[0]; w++) {
        b[0].d = 0x3C00; /* 1.0 */
        memset(b[0].qs, 0x88, sizeof b[0].qs);
        int j = w % (QK / 2);
        b[0].qs[j] = (uint8_t)(w < QK / 2 ? 0x8F : 0xF8);
        memset(q, 99, sizeof q);
        unpack_q4_0(&b[0], q);
        for (int i = 0; i < QK && !why[0]; i++)
            if (q[i] != (i == w ? 7 : 0))
                snprintf(why, sizeof why,
                         "unpack_q4_0(): with only the %s nibble of qs[%d] set to 15 (quant 7), quant %d is %d, "
                         "expected %d (weight j < 16 is the low nibble of qs[j], weight j + 16 its high nibble)",
                         w < QK / 2 ? "low" : "high", j, i, q[i], i == w ? 7 : 0);
    }
    result("unpack_q4_0: which weight each nibble is (low nibbles 0..15, high nibbles 16..31)", !why[0], why);

    why[0] = 0;
    b[0].d = 0x3C00;
    for (int j = 0; j < QK / 2; j++) b[0].qs[j] = (uint8_t)(j | (15 - j) << 4);
    unpack_q4_0(&b[0], q);
    for (int j = 0; j < QK && !why[0]; j++) {
        int want = j < QK / 2 ? j - 8 : (15 - (j - QK / 2)) - 8;
        if (q[j] != want)
            snprintf(why, sizeof why, "unpack_q4_0(): quant %d is %d, expected %d (nibble %d minus 8)", j, q[j], want,
                     want + 8);
    }
    result("unpack_q4_0: all sixteen nibble values, minus 8 (-8..7)", !why[0], why);

    why[0] = 0;
    b[0].d = 0xB800; /* -0.5 */
    for (int j = 0; j < QK / 2; j++) b[0].qs[j] = (uint8_t)rnd_u32();
    dequant_ok(b, 1, why, sizeof why);
    result("dequant_q4_0: one block with a negative scale (-0.5)", !why[0], why);

    why[0] = 0;
    static const uint16_t scales[4] = {0x2E66 /* 0.1 */, 0x4500 /* 5 */, 0x0001 /* the smallest subnormal */, 0x3555};
    for (int i = 0; i < 4; i++) {
        b[i].d = scales[i];
        for (int j = 0; j < QK / 2; j++) b[i].qs[j] = (uint8_t)rnd_u32();
    }
    dequant_ok(b, 4, why, sizeof why);
    result("dequant_q4_0: a row of four blocks, each with its own scale", !why[0], why);

    /* the plain-C dot product (unpack_q4_0) against this build's kernel */
    enum { NB = 24 };
    BlockQ4_0 w[NB];
    BlockQ8 x[NB];
    float xd[NB];
    int16_t xsum[NB];
    why[0] = 0;
    for (int i = 0; i < NB; i++) {
        w[i].d = fp16_from_float((float)(rnd_u32() % 1000 + 1) * 1e-4f);
        for (int j = 0; j < QK / 2; j++) w[i].qs[j] = (uint8_t)rnd_u32();
        x[i].d = fp16_from_float((float)(rnd_u32() % 1000 + 1) * 1e-3f);
        int s = 0;
        for (int j = 0; j < QK; j++) s += x[i].qs[j] = (int8_t)((int)(rnd_u32() % 255) - 127);
        xd[i] = fp16_to_float(x[i].d);
        xsum[i] = (int16_t)s;
    }
    for (int n = 0; n <= NB && !why[0]; n++) {
        float plain = dot_q4_0_c(w, x, xd, xsum, n), simd = simd_dot_q4_0(w, x, xd, xsum, n);
        if (memcmp(&plain, &simd, sizeof plain) != 0)
            snprintf(why, sizeof why,
                     "a row of %d blocks: the plain-C Q4_0 dot product (with unpack_q4_0()) gives %.9g, the %s "
                     "kernel %.9g",
                     n, (double)plain, SIMD_NAME, (double)simd);
    }
    result("dot_q4_0_c (plain C, with unpack_q4_0) equals this build's Q4_0 kernel bit for bit", !why[0], why);
}

/* --- 5.2: the GGUF readers ---------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(Buf *b, uint32_t v) {
    uint8_t le[4];
    for (int i = 0; i < 4; i++) le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, 4);
}

static void put_u64(Buf *b, uint64_t v) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(v >> (8 * i));
    put(b, le, 8);
}

static void put_str(Buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

/** A GGUF v3 header: no tensors, @p n_kv metadata pairs. */
static Buf header(uint64_t n_kv) {
    Buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, n_kv);
    return b;
}

/** @p b's bytes, copied so that they end exactly where an unreadable page begins. */
static const uint8_t *guarded(const Buf *b) {
    long page = sysconf(_SC_PAGESIZE);
    size_t span = (b->n + (size_t)page - 1) / (size_t)page * (size_t)page;
    uint8_t *m = mmap(NULL, span + (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    if (mprotect(m + span, (size_t)page, PROT_NONE) != 0) abort();
    uint8_t *at = m + span - b->n;
    memcpy(at, b->p, b->n);
    return at;
}

/**
 * gguf_parse() of @p b in a child process with a time limit; @p check (may be
 * NULL) then examines the parsed file there and returns 0 or writes why. Returns
 * 1 if parsed and checked, 0 if refused (its message in @p err), -1 if the child
 * crashed or ran out of time (@p err says which), -2 if the check failed.
 */
typedef int (*Check)(const GgufFile *g, char *why, size_t len);

static int parse_in_child(const Buf *b, Check check, char *err, size_t len) {
    int fd[2];
    if (pipe(fd) != 0) abort();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        close(fd[0]);
        alarm(3);
        GgufFile g;
        char msg[400] = "";
        const uint8_t *data = guarded(b);
        int rc = gguf_parse(&g, data, b->n, msg, sizeof msg), code = rc == 0 ? 1 : 0;
        if (rc == 0 && check && check(&g, msg, sizeof msg) != 0) code = 2;
        if (write(fd[1], msg, strlen(msg)) < 0) _exit(3);
        _exit(code);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], err, len - 1);
    err[got > 0 ? got : 0] = 0;
    close(fd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(err, len, "%s",
                 sig == SIGALRM ? "gguf_parse() did not return within 3 s (a loop over a count it should have refused?)"
                 : sig == SIGSEGV || sig == SIGBUS
                     ? "gguf_parse() crashed reading past the end of the buffer (a length it did not check?)"
                     : "gguf_parse() crashed");
        return -1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 3;
    return code == 1 ? 1 : code == 0 ? 0 : code == 2 ? -2 : -1;
}

/* the valid file: strings and arrays of every kind the chapter reads */
static int check_valid(const GgufFile *g, char *why, size_t len) {
    const char *s;
    size_t n;
    if (g->n_kv != 6) return snprintf(why, len, "%llu metadata pairs, expected 6", (unsigned long long)g->n_kv), 1;
    if (gguf_get_string(g, "a.str", &s, &n, why, len) != GGUF_FOUND || n != 5 || memcmp(s, "hello", 5) != 0)
        return snprintf(why, len, "the string a.str does not read back as \"hello\""), 1;
    if (gguf_get_string(g, "z.empty", &s, &n, why, len) != GGUF_FOUND || n != 0)
        return snprintf(why, len, "the empty string z.empty (the last bytes of the file) does not read back"), 1;
    const char **texts;
    size_t *lens;
    uint64_t count;
    if (gguf_get_string_array(g, "a.strs", &texts, &lens, &count, why, len) != GGUF_FOUND)
        return snprintf(why, len, "the string array a.strs is missing or not an array of strings"), 1;
    int bad = count != 3 || lens[0] != 1 || memcmp(texts[0], "x", 1) != 0 || lens[1] != 0 || lens[2] != 2 ||
              memcmp(texts[2], "yz", 2) != 0;
    free(texts);
    free(lens);
    if (bad) return snprintf(why, len, "the string array a.strs does not read back as {\"x\", \"\", \"yz\"}"), 1;
    int32_t *ints;
    if (gguf_get_i32_array(g, "a.ints", &ints, &count, why, len) != GGUF_FOUND)
        return snprintf(why, len, "the i32 array a.ints is missing or not an array of i32"), 1;
    bad = count != 3 || ints[0] != 1 || ints[1] != -2 || ints[2] != 300000;
    free(ints);
    if (bad) return snprintf(why, len, "the i32 array a.ints does not read back as {1, -2, 300000}"), 1;
    const GgufKV *kv = gguf_find_key(g, "a.bools");
    if (!kv || kv->type != GGUF_ARRAY || kv->elem_type != GGUF_BOOL || kv->count != 2 || kv->value_len != 2)
        return snprintf(why, len, "the bool array a.bools: not an array of 2 bools of 2 bytes"), 1;
    kv = gguf_find_key(g, "a.none");
    if (!kv || kv->type != GGUF_ARRAY || kv->elem_type != GGUF_U32 || kv->count != 0 || kv->value_len != 0)
        return snprintf(why, len, "the empty u32 array a.none: not an array of 0 elements"), 1;
    return 0;
}

static void check_gguf(void) {
    char err[500], why[700];

    Buf b = header(6);
    put_str(&b, "a.str"), put_u32(&b, GGUF_STRING), put_str(&b, "hello");
    put_str(&b, "a.strs"), put_u32(&b, GGUF_ARRAY), put_u32(&b, GGUF_STRING), put_u64(&b, 3);
    put_str(&b, "x"), put_str(&b, ""), put_str(&b, "yz");
    put_str(&b, "a.ints"), put_u32(&b, GGUF_ARRAY), put_u32(&b, GGUF_I32), put_u64(&b, 3);
    put_u32(&b, 1), put_u32(&b, (uint32_t)-2), put_u32(&b, 300000);
    put_str(&b, "a.bools"), put_u32(&b, GGUF_ARRAY), put_u32(&b, GGUF_BOOL), put_u64(&b, 2);
    put(&b, "\0\1", 2);
    put_str(&b, "a.none"), put_u32(&b, GGUF_ARRAY), put_u32(&b, GGUF_U32), put_u64(&b, 0);
    put_str(&b, "z.empty"), put_u32(&b, GGUF_STRING), put_u64(&b, 0);
    int rc = parse_in_child(&b, check_valid, err, sizeof err);
    snprintf(why, sizeof why, "%s%s", rc == 0 ? "gguf_parse() refused it: " : "", err);
    result("GGUF: strings, arrays of strings, i32, bools and an empty array read back right", rc == 1, why);
    free(b.p);

    struct {
        const char *name;
        Buf b;
    } bad[12];
    int n_bad = 0;
#define BAD(label) (bad[n_bad].name = (label), bad[n_bad].b = header(1), &bad[n_bad++].b)
    Buf *p;
    p = BAD("a string value longer than the rest of the file");
    put_str(p, "k"), put_u32(p, GGUF_STRING), put_u64(p, 100), put(p, "short", 5);
    p = BAD("a string of length 2^64 - 1 (r->pos + len wraps around)");
    put_str(p, "k"), put_u32(p, GGUF_STRING), put_u64(p, UINT64_MAX), put(p, "abcdefgh", 8);
    p = BAD("a key longer than the rest of the file");
    put_u64(p, 40), put(p, "abc", 3);
    p = BAD("a key of more than GGUF_MAX_KEY bytes (the cap)");
    put_u64(p, (uint64_t)GGUF_MAX_KEY + 1);
    for (int i = 0; i <= GGUF_MAX_KEY; i++) put(p, "k", 1);
    put_u32(p, GGUF_U8), put(p, "\0", 1);
    p = BAD("an array of arrays");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_ARRAY), put_u64(p, 1);
    put_u32(p, GGUF_U8), put_u64(p, 1), put(p, "\0", 1);
    p = BAD("an array of an unknown element type (13)");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, 13), put_u64(p, 1), put_u32(p, 0);
    p = BAD("an array of u32 whose count (2^60) cannot fit in the file");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_U32), put_u64(p, (uint64_t)1 << 60), put_u32(p, 7);
    p = BAD("an array of strings whose count (2^61) cannot fit in the file");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_STRING), put_u64(p, (uint64_t)1 << 61), put_str(p, "a");
    p = BAD("an array of 3 strings with only 2 in the file");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_STRING), put_u64(p, 3), put_str(p, "ab"), put_str(p, "cd");
    p = BAD("an array of strings whose last string runs past the end");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_STRING), put_u64(p, 2), put_str(p, "ab");
    put_u64(p, 9), put(p, "cd", 2);
    p = BAD("an array of u16 with one byte missing");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_U16), put_u64(p, 2), put(p, "\1\0\2", 3);
    p = BAD("an array of bools holding a 2");
    put_str(p, "k"), put_u32(p, GGUF_ARRAY), put_u32(p, GGUF_BOOL), put_u64(p, 3), put(p, "\0\1\2", 3);
#undef BAD
    for (int i = 0; i < n_bad; i++) {
        rc = parse_in_child(&bad[i].b, NULL, err, sizeof err);
        snprintf(why, sizeof why, "%s", rc == 1 ? "gguf_parse() accepted it" : err);
        char name[200];
        snprintf(name, sizeof name, "GGUF: refused, with an error: %s", bad[i].name);
        result(name, rc == 0, why);
        free(bad[i].b.p);
    }
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s MODEL [THREADS]\n", argv[0]);
        return 2;
    }
    check_q4_0();
    check_gguf();
    fflush(stdout);
    return failures ? 1 : 0;
}

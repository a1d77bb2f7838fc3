/**
 * @file unit_seqs.c
 * @brief Chapter 9's model_forward_seqs(): each sequence's logits beside seven others equal its logits alone, bit for bit.
 *
 *     build/tests/unit_seqs SHARED BUILD
 *
 * Includes chapters/09_serve.c and runs tests/seqs_script.h (eight sequences over ten
 * steps: prompts shorter and longer than -b, decoding, appends, a rewind, a new prompt
 * in a used slot, slots left out) on BUILD/models/tiny-q4_0.gguf (made with
 * BUILD/gguf_convert when absent) and, where SHARED has them, syn-k256-q4_k_m.gguf (K-quant
 * tiles) and families/qwen2-syn-q8_0.gguf (biases, NEOX pairs, grouped-query attention),
 * at -t 1 and -t 3, with -b 16 and -b 5. The reference is a one-sequence model's
 * model_forward(). Then the refusals: a sequence outside -np, one named twice in a step,
 * and an -np beyond the limit each end the program with one line (in a child process).
 *
 * The Makefile builds unit tests without -march (the plain-C kernels and tiles); the
 * grader's probe (tools/grade/probe_09.c) runs the same script with the chapter's SIMD flags.
 */
#include "../chapters/09_serve.c"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seqs_script.h"
#include "unit.h"

static void report(const char *name, int pass, const char *why) { CHECK(name, pass, "%s", why); }

/** BUILD/models/tiny-q4_0.gguf, converted from tiny.bin when it is not there yet; NULL if it cannot be. */
static const char *tiny_gguf(const char *build, char *path, size_t cap) {
    struct stat st;
    snprintf(path, cap, "%s/models/tiny-q4_0.gguf", build);
    if (stat(path, &st) == 0) return path;
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s/gguf_convert' -m '%s/models/tiny.bin' -z '%s/models/tok512.bin' -o '%s.tmp%d' -t q4_0 >/dev/null 2>&1 && "
             "mv '%s.tmp%d' '%s'",
             build, build, build, path, (int)getpid(), path, (int)getpid(), path);
    return system(cmd) == 0 && stat(path, &st) == 0 ? path : NULL;
}

/** Whether calling @p fn in a child process ends it with status 1 and a line on stderr that contains @p needle. */
static int dies_with(void (*fn)(const char *), const char *path, const char *needle) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 0;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(path);
        _exit(0);
    }
    close(fds[1]);
    char buf[1024];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    buf[got] = 0;
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(buf, needle) != NULL;
}

static void step_outside_np(const char *path) {
    ModelOptions o = {1, 0, 0, 0, 0, 2};
    Model *m = model_open(path, &o);
    int tokens[2] = {1, 5};
    float *l = xcalloc((size_t)model_config(m)->vocab_size * 2, sizeof(float));
    ModelSeqStep s[2] = {{0, tokens, 2, l}, {2, tokens, 2, l + model_config(m)->vocab_size}};
    model_forward_seqs(m, s, 2);
}

static void step_twice(const char *path) {
    ModelOptions o = {1, 0, 0, 0, 0, 2};
    Model *m = model_open(path, &o);
    int tokens[2] = {1, 5};
    float *l = xcalloc((size_t)model_config(m)->vocab_size * 2, sizeof(float));
    ModelSeqStep s[2] = {{1, tokens, 2, l}, {1, tokens, 1, l + model_config(m)->vocab_size}};
    model_forward_seqs(m, s, 2);
}

static void too_many_seqs(const char *path) {
    ModelOptions o = {1, 0, 0, 0, 0, 1 << 20};
    model_open(path, &o);
}

int main(int argc, char **argv) {
    const char *shared = argc > 1 ? argv[1] : "../shared", *build = argc > 2 ? argv[2] : "build";
    char tiny[1024], path[1024];
    const char *files[3] = {tiny_gguf(build, tiny, sizeof tiny), NULL, NULL};
    if (!files[0]) SKIP("seqs: tiny-q4_0.gguf", "cannot be made: BUILD/gguf_convert or BUILD/models/tiny.bin is missing");
    static char k256[1024], qwen[1024];
    snprintf(k256, sizeof k256, "%s/models/gguf/syn-k256-q4_k_m.gguf", shared);
    snprintf(qwen, sizeof qwen, "%s/models/gguf/families/qwen2-syn-q8_0.gguf", shared);
    files[1] = access(k256, R_OK) == 0 ? k256 : NULL;
    files[2] = access(qwen, R_OK) == 0 ? qwen : NULL;
    if (!files[1]) SKIP("seqs: syn-k256-q4_k_m.gguf", "not in SHARED/models/gguf");
    if (!files[2]) SKIP("seqs: qwen2-syn-q8_0.gguf", "not in SHARED/models/gguf/families");
    const int threads[] = {1, 3}, batches[] = {16, 5};
    for (int f = 0; f < 3; f++)
        for (int t = 0; t < 2 && files[f]; t++)
            for (int b = 0; b < 2; b++)
                if (f == 0 || b == 0) seqs_script(files[f], threads[t], batches[b], report);
    snprintf(path, sizeof path, "%s", files[0] ? files[0] : files[1] ? files[1] : "");
    if (path[0]) {
        CHECK("seqs: a sequence outside -np is refused", dies_with(step_outside_np, path, "sequence 2 does not exist"),
              "no fatal() naming it");
        CHECK("seqs: a sequence twice in one step is refused", dies_with(step_twice, path, "appears twice"),
              "no fatal() naming it");
        CHECK("seqs: -np beyond the limit is refused", dies_with(too_many_seqs, path, "-np"), "no fatal() naming -np");
    }
    return UNIT_EXIT();
}

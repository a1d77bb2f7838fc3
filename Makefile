# llamabook — LLaMA inference in plain C, one chapter at a time.
#
#   make              build every chapter (build/chNN), the tools and the tiny synthetic model
#   make run          generate a story with the newest chapter
#   make test         the whole test suite (gcc, clang, sanitizers, ...); ends "N passed, N failed"
#   make bench        measure every chapter; prints a markdown table
#   make docs         the book as HTML (Doxygen) in docs/html
#   make diff N=2     what chapter 2 changes in chapter 1 (and the files it introduces)
#   make student CH=1 chapter 1 with its exercises blanked out, in student/
#   make grade CH=1   grade student/01_*.c: which exercises pass, and why not
#
# Variables: SHARED (../shared), CC, BUILD (build), OPT (-O2), ARCH (native: the
# -march of the SIMD chapters), SIMD (1; 0 = plain-C kernels), SANITIZE (1 =
# address+undefined, thread = ThreadSanitizer), WERROR (1 = warnings are errors).

SHARED   ?= ../shared
BUILD    ?= build
OPT      ?= -O2
ARCH     ?= native
SIMD     ?= 1
SANITIZE ?= 0
WERROR   ?= 0

WARN := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror)
SAN_1 := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_thread := -fsanitize=thread
SAN_FLAGS := $(SAN_$(SANITIZE))
CFLAGS_ALL := -std=c11 $(OPT) -g $(WARN) -D_DEFAULT_SOURCE -D_DARWIN_C_SOURCE -Isrc $(SAN_FLAGS) $(CFLAGS)
LDLIBS_ALL := $(SAN_FLAGS) $(LDFLAGS) -lm -lpthread

# The chapters' table (chapters/chapters.tsv) says how each one is built. The
# "plain" chapters are strict IEEE fp32 C: no fused multiply-add, no -march,
# so their sums round exactly like the llama2.c reference. The "simd" ones are
# compiled for the CPU they run on and choose their SIMD kernels from it.
CHAPTER_TABLE := chapters/chapters.tsv
table_column = $(shell awk -F '\t' '$$2 == "$(1)" { print $$1 }' $(CHAPTER_TABLE))
STRICT_CHAPTERS := $(call table_column,plain)
STRICT_FLAGS := -ffp-contract=off
SIMD_FLAGS := $(if $(ARCH),-march=$(ARCH)) -DLB_SIMD=$(SIMD)
chapter_flags = $(if $(filter $(STRICT_CHAPTERS),$(1)),$(STRICT_FLAGS),$(SIMD_FLAGS))

CHAPTER_SRCS := $(sort $(wildcard chapters/[0-9][0-9]_*.c))
chapter_num = $(notdir $(firstword $(subst _, ,$(1))))
CHAPTER_NUMS := $(foreach c,$(CHAPTER_SRCS),$(call chapter_num,$(c)))
CHAPTER_BINS := $(addprefix $(BUILD)/ch,$(CHAPTER_NUMS))
NEWEST := $(lastword $(CHAPTER_NUMS))

# The driver: the command line (main.c) and the server (server.c, chapter 9) call the model
# interface, so they are linked into the chapters only; every other src/*.c is a library that
# the tools and unit tests link too.
DRIVER_SRCS := src/main.c src/server.c
DRIVER_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(DRIVER_SRCS))
LIB_SRCS := $(filter-out $(DRIVER_SRCS),$(wildcard src/*.c))
LIB_OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
HEADERS := $(wildcard src/*.h)
TOOL_SRCS := $(wildcard tools/*.c)
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))
UNIT_SRCS := $(wildcard tests/unit_*.c)
UNIT_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))

# Rebuild everything when the compiler or its flags change.
STAMP := $(BUILD)/.flags-$(shell echo '$(CC) $(CFLAGS_ALL) $(SIMD_FLAGS)' | cksum | cut -d' ' -f1)

TINY := $(BUILD)/models/tiny.bin
TINY_TOK := $(BUILD)/models/tok512.bin

.PHONY: all run test bench docs diff clean student grade
all: $(CHAPTER_BINS) $(TOOL_BINS) $(UNIT_BINS) $(TINY)

$(STAMP):
	@mkdir -p $(BUILD)/obj $(BUILD)/tests $(BUILD)/models
	@rm -f $(BUILD)/.flags-*
	@touch $@

$(BUILD)/obj/%.o: src/%.c $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

define CHAPTER_RULE
$(BUILD)/ch$(call chapter_num,$(1)): $(1) $(DRIVER_OBJS) $(LIB_OBJS) $(HEADERS) $(STAMP)
	$$(CC) $$(CFLAGS_ALL) $$(call chapter_flags,$(call chapter_num,$(1))) -o $$@ $(1) $(DRIVER_OBJS) $(LIB_OBJS) $$(LDLIBS_ALL)
endef
$(foreach c,$(CHAPTER_SRCS),$(eval $(call CHAPTER_RULE,$(c))))

$(BUILD)/%: tools/%.c $(LIB_OBJS) $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

# The bandwidth meter must not be limited by its own arithmetic: it gets the
# SIMD chapters' -march, so that it reads memory as fast as they can.
$(BUILD)/membw: tools/membw.c $(LIB_OBJS) $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) $(SIMD_FLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

# The peak meter measures the chapters' own SIMD instructions, so it gets their -march too.
$(BUILD)/peak: tools/peak.c $(LIB_OBJS) $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) $(SIMD_FLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

# The tile benchmark measures the chapters' kernels, so it is built as they are.
$(BUILD)/tilebench: tools/tilebench.c $(LIB_OBJS) $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) $(SIMD_FLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

# Unit tests may #include a chapter to reach its static functions.
$(BUILD)/tests/%: tests/%.c tests/unit.h $(CHAPTER_SRCS) $(LIB_OBJS) $(HEADERS) $(STAMP)
	$(CC) $(CFLAGS_ALL) $(STRICT_FLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS_ALL)

# The default model when ../shared is absent: small, synthetic, deterministic.
$(TINY): $(BUILD)/mksynth
	$(BUILD)/mksynth --preset tiny -o $(TINY) --tokenizer-out $(TINY_TOK)

# The main job: a story from the newest chapter, on a real model if there is one.
RUN_MODEL := $(if $(wildcard $(SHARED)/models/stories260K.bin),$(SHARED)/models/stories260K.bin -z $(SHARED)/models/tok512.bin,$(TINY) -z $(TINY_TOK))
# A chapter that reads GGUF files (the table's "reads" column) runs llama.cpp's Q4_0 llama2xs, or
# the tiny model converted to Q4_0.
TINY_GGUF := $(BUILD)/models/tiny-q4_0.gguf
$(TINY_GGUF): $(TINY) $(BUILD)/gguf_convert
	$(BUILD)/gguf_convert -m $(TINY) -z $(TINY_TOK) -o $@ -t q4_0
GGUF_CHAPTERS := $(shell awk -F '\t' '$$3 == "gguf" { print $$1 }' $(CHAPTER_TABLE))
ifneq ($(filter $(GGUF_CHAPTERS),$(NEWEST)),)
RUN_MODEL := $(if $(wildcard $(SHARED)/models/gguf/llama2xs-q4_0.gguf),$(SHARED)/models/gguf/llama2xs-q4_0.gguf,$(TINY_GGUF))
run: $(if $(wildcard $(SHARED)/models/gguf/llama2xs-q4_0.gguf),,$(TINY_GGUF))
endif
run: all
	@case "$(RUN_MODEL)" in $(BUILD)/models/tiny*) echo "note: $(SHARED) is absent, so this is a tiny model with random weights and its text is gibberish; README.md says where real models come from" >&2 ;; esac
	$(BUILD)/ch$(NEWEST) -m $(RUN_MODEL) -p "Once upon a time" -n 200 --temp 0.8 --top-p 0.9 -s 42 -v

test:
	@SHARED=$(SHARED) CC="$(CC)" bash tests/run_all.sh

bench: all
	@SHARED=$(SHARED) BUILD=$(BUILD) bash tools/bench.sh $(BENCH_ARGS)

# The book: tools/book.sh generates the diff, exercise and results parts into docs/gen,
# then runs Doxygen (warnings are errors) into docs/html.
docs:
	@bash tools/book.sh

# The chapter file's diff, then the files the chapter introduces (chapters/chapters.tsv) as new.
N ?= 2
diff:
	@bash tools/chapter_diff.sh $(N)

clean:
	rm -rf $(BUILD) docs/html docs/gen

# Exercises (tools/grade/grade.sh): the regions between EXERCISE N.k BEGIN/END comments
# in chapter N's source. `student` never overwrites a student's file (FORCE=1 does).
CH ?= 1
STUDENT ?= student
CH_NN = $(shell printf %02d $(CH) 2>/dev/null)
student:
	@STUDENT=$(STUDENT) bash tools/grade/grade.sh student $(CH)

grade: all
	@CC="$(CC)" CFLAGS="$(CFLAGS_ALL) $(call chapter_flags,$(CH_NN))" LDLIBS="$(LDLIBS_ALL)" \
	    MAIN_OBJ="$(DRIVER_OBJS)" LIB_OBJS="$(LIB_OBJS)" BUILD=$(BUILD) SHARED=$(SHARED) STUDENT=$(STUDENT) \
	    bash tools/grade/grade.sh grade $(CH)

# The flags chapter CH is compiled with, for scripts that build it without make (tests/t_book.sh).
.PHONY: grade-flags
grade-flags:
	@echo '$(CFLAGS_ALL) $(call chapter_flags,$(CH_NN))'

# The fuzzers, under libFuzzer (clang with compiler-rt), ASan and UBSan:
#   make fuzz [FUZZ_TARGET=gguf|model|server] [FUZZ_TIME=seconds]
# gguf (the default): chapter 5's GGUF reader, gguf_parse() on the bytes (tests/fuzz_gguf.c).
#   Seeds: the first 16 KiB of each shared GGUF file and the malformed files tests/unit_gguf.c writes.
# model: chapter FUZZ_CHAPTER's (05) whole setup from the bytes, the tokenizer on a prompt and three
#   positions of the forward pass, fatal() returning to the harness (tests/fuzz_model.c). Seeds: tiny
#   complete models (mksynth, gguf_convert) in F32, F16, Q8_0 and Q4_0 that reach the forward pass,
#   and the malformed files; rejected inputs' error lines are discarded (-close_fd_mask=2).
# server: chapter 9's parsers (tests/fuzz_server.c): http_parse_head() on the bytes, json_parse() on
#   them and on what follows the first blank line, the JSON writer on every parsed tree and on the
#   bytes as one string. Seeds: the good and malformed requests and documents that tests/unit_http.c
#   and tests/unit_json.c write (--write-cases).
# Corpora and finds (crash-*, leak-*, timeout-*) are left in $(BUILD)/fuzz. In libFuzzer's output,
# `#N ... cov: C ft: F corp: K/S exec/s: E` means N executions so far, C coverage points (edges)
# reached, F features (edges by hit count, comparisons), K inputs of S bytes in the corpus; the
# final stats (-print_final_stats=1) give the total as stat::number_of_executed_units.
FUZZ_TIME ?= 60
FUZZ_TARGET ?= gguf
FUZZ_CHAPTER ?= 05
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CC := clang -std=c11 -g -O1 $(WARN) -D_DEFAULT_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
# tests/fuzz_model.c records what an input allocates and maps, to release it after fatal()'s longjmp
FUZZ_WRAP := $(foreach f,malloc calloc realloc aligned_alloc free mmap munmap,-Wl,--wrap=$(f))
FUZZ_MODEL_SRCS := $(wildcard chapters/$(FUZZ_CHAPTER)_*.c) src/gguf.c src/util.c src/tokenizer.c src/bpe.c src/gguf_vocab.c src/threadpool.c
# name:mksynth shape:gguf_convert type; every one under the model target's -max_len (64 KiB)
FUZZ_MODEL_SEEDS := d16-f32:16,32,1,2,1:f32 d16-f16:16,32,1,2,1:f16 d32-q8_0:32,64,1,2,1:q8_0 \
    d32-q4_0:32,64,1,2,1:q4_0 d32-l2-q4_0:32,64,2,4,2:q4_0
.PHONY: fuzz fuzz-gguf fuzz-model fuzz-server fuzz-unknown
fuzz: $(if $(filter gguf model server,$(FUZZ_TARGET)),fuzz-$(FUZZ_TARGET),fuzz-unknown)
fuzz-unknown:
	@echo "error: FUZZ_TARGET=$(FUZZ_TARGET): expected gguf, model or server" >&2; exit 1

fuzz-gguf: $(BUILD)/tests/unit_gguf
	@mkdir -p $(FUZZ_DIR)/corpus $(FUZZ_DIR)/seeds
	$(FUZZ_CC) -o $(FUZZ_DIR)/fuzz_gguf tests/fuzz_gguf.c src/gguf.c src/util.c
	$(BUILD)/tests/unit_gguf --write-cases $(FUZZ_DIR)/seeds
	@for f in $(wildcard $(SHARED)/models/gguf/*.gguf $(SHARED)/models/holdout/gguf/*.gguf); do \
	    head -c 16384 $$f >$(FUZZ_DIR)/seeds/head-$$(basename $$f); done
	cd $(FUZZ_DIR) && ./fuzz_gguf -max_total_time=$(FUZZ_TIME) -max_len=20000 -print_final_stats=1 corpus seeds

fuzz-model: $(BUILD)/tests/unit_gguf $(BUILD)/mksynth $(BUILD)/gguf_convert
	@mkdir -p $(FUZZ_DIR)/corpus-model $(FUZZ_DIR)/seeds-model
	$(FUZZ_CC) $(SIMD_FLAGS) $(FUZZ_WRAP) -o $(FUZZ_DIR)/fuzz_model tests/fuzz_model.c $(FUZZ_MODEL_SRCS)
	$(BUILD)/tests/unit_gguf --write-cases $(FUZZ_DIR)/seeds-model
	@set -e; for s in $(FUZZ_MODEL_SEEDS); do \
	    name=$${s%%:*} type=$${s##*:} shape=$${s#*:}; shape=$${shape%:*}; \
	    set -- $$(echo $$shape | tr , ' '); \
	    $(BUILD)/mksynth --dim $$1 --hidden $$2 --layers $$3 --heads $$4 --kv-heads $$5 --vocab 260 --seq-len 8 \
	        -o $(FUZZ_DIR)/seed.bin --tokenizer-out $(FUZZ_DIR)/seed-tok.bin 2>/dev/null; \
	    $(BUILD)/gguf_convert -m $(FUZZ_DIR)/seed.bin -z $(FUZZ_DIR)/seed-tok.bin -t $$type \
	        -o $(FUZZ_DIR)/seeds-model/tiny-$$name.gguf >/dev/null 2>&1; \
	done; rm -f $(FUZZ_DIR)/seed.bin $(FUZZ_DIR)/seed-tok.bin
	cd $(FUZZ_DIR) && ./fuzz_model -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=30 -close_fd_mask=2 -print_final_stats=1 \
	    corpus-model seeds-model

fuzz-server: $(BUILD)/tests/unit_http $(BUILD)/tests/unit_json
	@mkdir -p $(FUZZ_DIR)/corpus-server $(FUZZ_DIR)/seeds-server
	$(FUZZ_CC) -o $(FUZZ_DIR)/fuzz_server tests/fuzz_server.c src/http.c src/json.c src/util.c
	$(BUILD)/tests/unit_http --write-cases $(FUZZ_DIR)/seeds-server
	$(BUILD)/tests/unit_json --write-cases $(FUZZ_DIR)/seeds-server
	cd $(FUZZ_DIR) && ./fuzz_server -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 -print_final_stats=1 \
	    corpus-server seeds-server

# tests/fuzz/fuzz.mk - libFuzzer harnesses (clang, ASan + UBSan).
#
#   make fuzz FUZZ_S=N   build every harness into build-fuzz/ and run each for
#                        N seconds (default 60), one at a time; fails on any
#                        crash, leak, UBSan report or timeout
#   make fuzz-ci         the same with FUZZ_S=10 (what CI runs)
#   make fuzz-build      build only (build-fuzz/fuzz/fuzz_<name>)
#   FUZZ=sse,json        run only these harnesses
#
# Each harness tests/fuzz/fuzz_<name>.c has a seed corpus in
# tests/fuzz/corpus/<name>/ and the inputs that once crashed it in
# tests/fuzz/regress/<name>/; the regress inputs (and the seeds) are
# replayed before the timed run. New corpus entries and crash artifacts go
# to build-fuzz/fuzz/, never into the tree.
#
# The harnesses and the objects they link are built by this Makefile's own
# generic rule in a sub-make with CC=clang BUILD=build-fuzz SANITIZE=1 and
# -fsanitize=fuzzer-no-link, so build-fuzz/obj/ is an instrumented copy of
# build/obj/.

DEB_PACKAGES += clang libclang-rt-14-dev llvm

FUZZ_BUILD := build-fuzz
FUZZ_CC ?= clang
FUZZ_S ?= 60
FUZZ_NAMES := audio base64 chat filters gguf json llm_params ndjson pcmstream sentences sse tok
FUZZ ?= $(FUZZ_NAMES)
FUZZ_RUN_NAMES = $(subst $(comma), ,$(FUZZ))
comma := ,

FUZZ_BINS := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_O = $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(1)))

CFLAGS_tests_fuzz_ := $(CFLAGS_common_) $(LLM_ENGINE_CFLAGS) \
	-Iservices/llm -Iservices/llm/gguf -Iservices/orchestrator \
	-DFUZZ_DATA_DIR='"$(abspath tests/fuzz/data)"'

# Each harness: its object, the service objects it tests, and the objects
# of common/ it needs (not libvoxline.a, so a file of common/ being
# rewritten does not stop the fuzz build). vx_reqbody.o (vx_utf8_valid,
# used by llm_params.c) refers to vx_req.c's request API, which no harness
# calls: fuzz_stubs.c satisfies the linker with functions that abort().
FUZZ_COMMON = $(call FUZZ_O,$(addprefix common/,$(1)) common/vx_buf)
FUZZ_OBJS_audio := $(call FUZZ_O,tests/fuzz/fuzz_audio) \
	$(call FUZZ_COMMON,vx_audio vx_g711 vx_resampler)
FUZZ_OBJS_base64 := $(call FUZZ_O,tests/fuzz/fuzz_base64) $(call FUZZ_COMMON,vx_base64)
FUZZ_OBJS_gguf := $(call FUZZ_O,tests/fuzz/fuzz_gguf services/llm/gguf/gguf) $(KERN_OBJS)
FUZZ_OBJS_chat := $(call FUZZ_O,tests/fuzz/fuzz_chat services/llm/gguf/chat_template \
	services/llm/gguf/tokenizer services/llm/gguf/tokenizer_pre tests/gguf/tok_fixture) \
	$(call FUZZ_COMMON,)
FUZZ_OBJS_filters := $(call FUZZ_O,tests/fuzz/fuzz_filters services/llm/stopstr \
	services/llm/think services/llm/llm_emit) $(call FUZZ_COMMON,)
FUZZ_OBJS_json := $(call FUZZ_O,tests/fuzz/fuzz_json) $(call FUZZ_COMMON,vx_json)
FUZZ_OBJS_llm_params := $(call FUZZ_O,tests/fuzz/fuzz_llm_params services/llm/llm_params \
	services/llm/stopstr tests/fuzz/fuzz_stubs) \
	$(call FUZZ_COMMON,vx_json vx_reqbody vx_audio vx_g711 vx_resampler)
FUZZ_OBJS_pcmstream := $(call FUZZ_O,tests/fuzz/fuzz_pcmstream) \
	$(call FUZZ_COMMON,vx_pcmstream vx_g711 vx_resampler)
FUZZ_OBJS_sentences := $(call FUZZ_O,tests/fuzz/fuzz_sentences services/orchestrator/sentences) \
	$(call FUZZ_COMMON,)
FUZZ_REMOTE_OBJS := $(call FUZZ_O,services/llm/llm_remote services/llm/llm_http \
	services/llm/llm_emit services/llm/think services/llm/stopstr) \
	$(call FUZZ_COMMON,vx_curl vx_time)
FUZZ_OBJS_sse := $(call FUZZ_O,tests/fuzz/fuzz_sse services/llm/sse) $(FUZZ_REMOTE_OBJS)
FUZZ_OBJS_ndjson := $(call FUZZ_O,tests/fuzz/fuzz_ndjson services/llm/ndjson) $(FUZZ_REMOTE_OBJS)
FUZZ_OBJS_tok := $(call FUZZ_O,tests/fuzz/fuzz_tok services/llm/gguf/tokenizer \
	services/llm/gguf/tokenizer_pre tests/gguf/tok_fixture) $(call FUZZ_COMMON,)

# kept: they are reached only through the pattern rule below
.SECONDARY: $(foreach n,$(FUZZ_NAMES),$(FUZZ_OBJS_$(n)))

FUZZ_LIBS := $(COMMON_LIBS) $(LLM_ENGINE_LIBS) -lm

$(BUILD)/fuzz/fuzz_%: $$(FUZZ_OBJS_$$*)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

.PHONY: fuzz fuzz-ci fuzz-build fuzz-bins fuzz-run
fuzz-bins: $(FUZZ_BINS)

FUZZ_SUBMAKE = $(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=$(FUZZ_BUILD) SANITIZE=1 \
	CFLAGS='-fsanitize=fuzzer-no-link'

fuzz-build:
	+$(FUZZ_SUBMAKE) fuzz-bins

fuzz: deps
	+$(FUZZ_SUBMAKE) fuzz-bins
	+$(FUZZ_SUBMAKE) fuzz-run FUZZ_S=$(FUZZ_S) FUZZ='$(FUZZ)'

fuzz-ci:
	+$(MAKE) --no-print-directory fuzz FUZZ_S=10

# Runs in the sub-make (BUILD=build-fuzz): ASAN/LSAN/UBSAN_OPTIONS are the
# SANITIZE=1 ones. Per harness: replay regress/ and the seeds, then fuzz
# for FUZZ_S seconds. Stops at the first failure; the crashing input is
# left in $(BUILD)/fuzz/artifacts/<name>/.
fuzz-run:
	@for n in $(FUZZ_RUN_NAMES); do \
		bin=$(BUILD)/fuzz/fuzz_$$n; art=$(BUILD)/fuzz/artifacts/$$n/; \
		mkdir -p $$art $(BUILD)/fuzz/corpus/$$n; \
		reg=$$(ls -d tests/fuzz/regress/$$n/* 2>/dev/null); \
		echo "== fuzz_$$n: replay $$(echo $$reg | wc -w) regress inputs"; \
		if [ -n "$$reg" ]; then $$bin -artifact_prefix=$$art $$reg \
			> $(BUILD)/fuzz/$$n.replay.log 2>&1 || \
			{ tail -40 $(BUILD)/fuzz/$$n.replay.log; echo "fuzz_$$n: a regress input fails"; exit 1; }; fi; \
		echo "== fuzz_$$n: $(FUZZ_S) s"; \
		$$bin -max_total_time=$(FUZZ_S) -timeout=20 -rss_limit_mb=2048 \
			-max_len=$$(cat tests/fuzz/corpus/$$n.max_len 2>/dev/null || echo 4096) \
			-print_final_stats=1 -artifact_prefix=$$art \
			$(BUILD)/fuzz/corpus/$$n tests/fuzz/corpus/$$n \
			> $(BUILD)/fuzz/$$n.log 2>&1 || \
			{ tail -60 $(BUILD)/fuzz/$$n.log; echo "fuzz_$$n: FAILED (artifact in $$art)"; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^stat::new_units_added' $(BUILD)/fuzz/$$n.log | tr '\n' ' '; echo; \
	done; echo "fuzz: $$(echo $(FUZZ_RUN_NAMES) | wc -w) harnesses, no crash"

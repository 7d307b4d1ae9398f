# common/kern/kern.mk - the numeric kernels both built-in engines link: ggml's
# tensor types (block formats, dequantisation, dot and gemm kernels, portable
# C plus AVX2/VNNI) and the worker team that runs their loops. The GGUF LLM
# engine (services/llm/gguf) and the Whisper STT engine (services/stt/whisper)
# each link KERN_OBJS; sources include "kern/quant.h" and "kern/team.h".
# Not part of libvoxline: daemons that do no maths do not carry them.
KERN_SRCS := $(wildcard common/kern/*.c)
KERN_OBJS := $(KERN_SRCS:%.c=$(BUILD)/obj/%.o)
CFLAGS_common_kern_ += $(if $(filter 1,$(SANITIZE)),-O2,-O3) -fno-math-errno

# the float gemm (fgemm.c) against a double-precision product
$(BUILD)/tests/test_fgemm: $(BUILD)/obj/tests/unit/test_fgemm.o $(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm
UNIT_TESTS += $(BUILD)/tests/test_fgemm

# the vectorised GELU and softmax exponentials (vmath.c) against libm
$(BUILD)/tests/test_vmath: $(BUILD)/obj/tests/unit/test_vmath.o $(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lm
UNIT_TESTS += $(BUILD)/tests/test_vmath

# the worker team (team.c): each task of each run exactly once, none late
$(BUILD)/tests/test_team: $(BUILD)/obj/tests/unit/test_team.o $(KERN_OBJS)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -lpthread -lm
UNIT_TESTS += $(BUILD)/tests/test_team

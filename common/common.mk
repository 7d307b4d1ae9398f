# common/: libvoxline.a, linked by every daemon.
COMMON_PKGS := libmicrohttpd libwebsockets sndfile vorbis ogg soxr libcjson libsystemd libnats
COMMON_SRCS := $(wildcard common/*.c)
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/obj/%.o)
LIBVOXLINE := $(BUILD)/lib/libvoxline.a
CFLAGS_common_ := $(shell $(PKG_CONFIG) --cflags $(COMMON_PKGS)) $(shell $(PKG_CONFIG) --cflags libcurl)
COMMON_LIBS := $(shell $(PKG_CONFIG) --libs $(COMMON_PKGS)) -lm

$(LIBVOXLINE): $(COMMON_OBJS)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

# Unit tests of common/: tests/unit/test_<module>.c -> $(BUILD)/tests/test_<module>
COMMON_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard $(addprefix tests/unit/test_,$(notdir $(COMMON_SRCS:.c=.c)))))
CFLAGS_tests_unit_ := $(CFLAGS_common_)

$(COMMON_TESTS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS)

UNIT_TESTS += $(COMMON_TESTS)

# common/kern/: the numeric kernels of the built-in engines (not in libvoxline)
include common/kern/kern.mk

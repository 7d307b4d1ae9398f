# Benchmark-only programs: the bare libmicrohttpd anchor of bench_core.py.
$(BUILD)/tools/mhd_bare: $(BUILD)/obj/tests/bench/mhd_bare.o
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(shell $(PKG_CONFIG) --libs libmicrohttpd)
CFLAGS_tests_bench_ := $(shell $(PKG_CONFIG) --cflags libmicrohttpd)
TOOLS += $(BUILD)/tools/mhd_bare

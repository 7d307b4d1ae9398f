# voxline-vad: main.c + api.c on libvoxline, with the engines of engines.mk.
VAD_SRCS := services/vad/main.c services/vad/api.c services/vad/jobs.c
VAD_SRCS += services/vad/wyoming.c
VAD_OBJS := $(VAD_SRCS:%.c=$(BUILD)/obj/%.o)
CFLAGS_services_vad_ += $(CFLAGS_common_)

$(BUILD)/bin/voxline-vad: $(VAD_OBJS) $$(VAD_ENGINE_OBJS) $(LIBVOXLINE)
	@mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(COMMON_LIBS) $(VAD_ENGINE_LIBS)
BINS += $(BUILD)/bin/voxline-vad

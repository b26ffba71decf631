# km: build, test and benchmark. See README.md.
#   make            build build/bin/km and the test guests
#   make check      install missing packages, build, run every test
#   make demo       install missing packages, build, a container under km-shim (checkpoint, restore), guests under km
#   make asan       the same tests against an address/undefined-sanitizer build of km
#   make bench      benchmarks: km beside native and bare KVM; km-shim beside runc, crun and CRIU

BUILD ?= build
CC := gcc
MUSLCC := musl-gcc
SAN ?=
OPT ?= -O2
# -DKM_TEST_HOOKS: the test build of km (make test-km), with hooks tests use to check km's work.
KM_DEFS ?=
# km/ holds the program and its glue; its layers are folders, each on the include path.
KM_DIRS := km km/vm km/mm km/load km/sys km/fd km/proc km/snapshot
CFLAGS := -std=gnu11 $(OPT) $(KM_DEFS) -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	  $(KM_DIRS:%=-I%) -Iruntime -Iruntime/vdso -Iruntime/include -I$(BUILD)/gen $(SAN)
LDLIBS := -lelf -lpthread
# km is linked statically (except under a sanitizer, which cannot be): km-shim execs it inside a
# container after pivot_root, where none of the host's shared libraries exist (static-pie: km
# keeps ASLR).
KM_LDFLAGS := $(if $(SAN),,-static-pie)
KM_LDLIBS := -lelf -lz -lpthread

KM_SRCS := $(sort $(wildcard $(KM_DIRS:%=%/*.c)))
KM_OBJS := $(KM_SRCS:%.c=$(BUILD)/obj/%.o)
KM_LIB_OBJS := $(filter-out $(BUILD)/obj/km/main.o,$(KM_OBJS)) $(BUILD)/obj/km/vm/runtime_blob.o \
	       $(BUILD)/obj/km/vm/vdso_blob.o
RT_BIN := $(BUILD)/runtime/km_runtime.bin
# The guest's vDSO (runtime/vdso/): a freestanding shared object whose file is its image.
VDSO_SO := $(BUILD)/runtime/km_vdso.so
VDSO_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -ffreestanding -fno-stack-protector \
	       -fno-asynchronous-unwind-tables -fno-unwind-tables -fcf-protection=none -mno-sse -mno-mmx \
	       -fvisibility=hidden -Iruntime/vdso
VDSO_LDFLAGS := -nostdlib -shared -Wl,-T,runtime/vdso/km_vdso.lds -Wl,-soname,linux-vdso.so.1 \
		-Wl,--hash-style=both -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack \
		-Wl,--no-undefined

# Test guests are ordinary static programs, built twice (glibc and musl); never sanitized.
GUEST_DIR := build/tests/guests
GUEST_SRCS := $(sort $(wildcard tests/guests/*.c))
GUEST_NAMES := $(GUEST_SRCS:tests/guests/%.c=%)
GUESTS := $(GUEST_NAMES:%=$(GUEST_DIR)/gcc/%) $(GUEST_NAMES:%=$(GUEST_DIR)/musl/%)
GUEST_CFLAGS := -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iruntime/include

# Dynamically linked test guests (tests/guests-dyn/, tests/e2e/dynlink.sh): gcc without -static;
# lib*.c are shared libraries beside them, of which libdyntls and libdynwho are linked in (found
# at run time through LD_LIBRARY_PATH: no rpath), the others dlopen'd or preloaded.
DYN_GUEST_DIR := $(GUEST_DIR)/dyn
DYN_LIBS := $(patsubst tests/guests-dyn/%.c,$(DYN_GUEST_DIR)/%.so,$(sort $(wildcard tests/guests-dyn/lib*.c)))
DYN_GUESTS := $(patsubst tests/guests-dyn/%.c,$(DYN_GUEST_DIR)/%,\
	      $(filter-out tests/guests-dyn/lib%,$(sort $(wildcard tests/guests-dyn/*.c))))

# Go test guests (threads and signals as Go's runtime uses them): static, CGO_ENABLED=0, one
# program per .go file. The Go cache and GOPATH live under build/ so a build writes nothing else.
GO_GUEST_DIR := build/tests/guests-go
GO_GUESTS := $(patsubst tests/guests-go/%.go,$(GO_GUEST_DIR)/%,$(sort $(wildcard tests/guests-go/*.go)))
GO_ENV := CGO_ENABLED=0 GOENV=off GOFLAGS= GO111MODULE=auto \
	  GOCACHE=$(abspath build/go-cache) GOPATH=$(abspath build/go-path)

# Small host-side programs the tests use (e.g. the management-socket client).
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOLS := $(TOOL_SRCS:tests/tools/%.c=build/tests/tools/%)

UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)

.PHONY: test-km all km shim guests tools bundles deps check test unit e2e demo asan bench fuzz fuzz-snapshot fuzz-elf fuzz-oci fuzz-syscalls clean
all: km shim guests tools bundles
km: $(BUILD)/bin/km

deps:
	@scripts/deps.sh

# The test build of km (build/test-km/bin/km): km with KM_TEST_HOOKS, e.g. a live snapshot's
# memory also copied at the pause for tests/e2e/live.sh to compare with. Never installed or shipped.
TEST_KM := build/test-km/bin/km
test-km:
	@$(MAKE) --no-print-directory BUILD=build/test-km KM_DEFS=-DKM_TEST_HOOKS SAN= build/test-km/bin/km

$(BUILD)/obj/%.o: %.c $(wildcard $(KM_DIRS:%=%/*.h) runtime/*.h runtime/vdso/*.h runtime/include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(RT_BIN): runtime/km_runtime.S runtime/km_runtime_layout.h
	@mkdir -p $(dir $@)
	$(CC) -Iruntime -c $< -o $(BUILD)/runtime/km_runtime.o
	objcopy -O binary -j .text $(BUILD)/runtime/km_runtime.o $@

$(BUILD)/obj/km/vm/runtime_blob.o: km/vm/runtime_blob.S $(RT_BIN)
	@mkdir -p $(dir $@)
	$(CC) -c -DKM_RUNTIME_BIN='"$(RT_BIN)"' $< -o $@

$(VDSO_SO): runtime/vdso/km_vdso_guest.c runtime/vdso/km_vdso_entry.S runtime/vdso/km_vdso.lds \
	    $(wildcard runtime/vdso/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(VDSO_CFLAGS) $(VDSO_LDFLAGS) -o $@.full runtime/vdso/km_vdso_guest.c runtime/vdso/km_vdso_entry.S
	objcopy --strip-debug $@.full $@

$(BUILD)/obj/km/vm/vdso_blob.o: km/vm/vdso_blob.S $(VDSO_SO)
	@mkdir -p $(dir $@)
	$(CC) -c -DKM_VDSO_SO='"$(VDSO_SO)"' $< -o $@

$(BUILD)/bin/km: $(KM_OBJS) $(BUILD)/obj/km/vm/runtime_blob.o $(BUILD)/obj/km/vm/vdso_blob.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KM_LDFLAGS) -o $@ $^ $(KM_LDLIBS)

# oci/: config.json and state.json (jansson). shim/: km-shim, the OCI runtime. Both use km's
# error objects (km/km_error.c) and nothing else of km.
OCI_SRCS := $(sort $(wildcard oci/*.c))
OCI_OBJS := $(OCI_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/km/km_error.o
SHIM_SRCS := $(sort $(wildcard shim/*.c))
SHIM_OBJS := $(SHIM_SRCS:%.c=$(BUILD)/obj/%.o)
SHIM_LIB_OBJS := $(filter-out $(BUILD)/obj/shim/shim_main.o,$(SHIM_OBJS))
SHIM_CFLAGS := -Ioci -Ishim
SHIM_LDLIBS := -ljansson -lseccomp
$(BUILD)/obj/oci/%.o $(BUILD)/obj/shim/%.o: CFLAGS += $(SHIM_CFLAGS)
$(BUILD)/obj/oci/%.o: oci/%.c $(wildcard oci/*.h) km/km_error.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/shim/%.o: shim/%.c $(wildcard oci/*.h shim/*.h) km/km_error.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
# A sanitizer build's km is dynamic and cannot run in a container: its km-shim runs the plain
# build's static km (shim_km_path), whoever calls it (conmon passes no environment).
$(BUILD)/obj/shim/shim_cmd_util.o: CFLAGS += $(if $(SAN),-DKM_SHIM_KM_PATH='"$(abspath build/bin/km)"')
$(BUILD)/bin/km-shim: $(SHIM_OBJS) $(OCI_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(SHIM_LDLIBS)
shim: $(if $(wildcard shim/shim_main.c),$(BUILD)/bin/km-shim)

guests: $(GUESTS) $(GO_GUESTS) $(DYN_LIBS) $(DYN_GUESTS)
$(GUEST_DIR)/gcc/%: tests/guests/%.c $(wildcard tests/guests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -static -o $@ $< -lm
$(GUEST_DIR)/musl/%: tests/guests/%.c $(wildcard tests/guests/*.h)
	@mkdir -p $(dir $@)
	$(MUSLCC) $(GUEST_CFLAGS) -static -o $@ $< -lm

$(DYN_GUEST_DIR)/%.so: tests/guests-dyn/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -fPIC -shared -o $@ $<
$(DYN_GUEST_DIR)/%: tests/guests-dyn/%.c tests/guests/check.h $(DYN_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -o $@ $< -L$(DYN_GUEST_DIR) -ldyntls -ldynwho -ldl -pthread

$(GO_GUEST_DIR)/%: tests/guests-go/%.go
	@mkdir -p $(dir $@)
	$(GO_ENV) go build -trimpath -o $@ $<

# Example OCI bundles (examples/bundles/README.md): build/bundles/<name>/{config.json,rootfs/}, the
# rootfs holding the example's static program as /bin/<name> and the mount points its config needs.
BUNDLE_NAMES := hello counter echo
BUNDLE_DIR := build/bundles
BUNDLE_FILES := $(foreach b,$(BUNDLE_NAMES),$(BUNDLE_DIR)/$(b)/config.json $(BUNDLE_DIR)/$(b)/rootfs/bin/$(b))
bundles: $(BUNDLE_FILES)
$(BUNDLE_DIR)/%/config.json: examples/bundles/%/config.json
	@mkdir -p $(dir $@)
	cp $< $@
define bundle_program
$(BUNDLE_DIR)/$(1)/rootfs/bin/$(1): examples/bundles/src/$(1).c
	@mkdir -p $$(dir $$@) $(addprefix $(BUNDLE_DIR)/$(1)/rootfs/,proc dev sys tmp)
	$(CC) -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -static -o $$@ $$<
endef
$(foreach b,$(BUNDLE_NAMES),$(eval $(call bundle_program,$(b))))

tools: $(TOOLS)
build/tests/tools/%: tests/tools/%.c $(wildcard tests/tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $<
# ctr-probe stands in for km inside test containers, after pivot_root: no host libraries there.
build/tests/tools/ctr-probe: tests/tools/ctr-probe.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -static -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(KM_LIB_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $(filter-out %.h,$^) $(LDLIBS) -lcmocka

# Unit tests of oci/ and shim/ (test_oci_*.c, test_shim_*.c) link those, not km.
$(BUILD)/tests/unit/test_oci_%: tests/unit/test_oci_%.c $(OCI_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SHIM_CFLAGS) -Itests/unit -o $@ $(filter-out %.h,$^) $(SHIM_LDLIBS) -lcmocka
$(BUILD)/tests/unit/test_shim_%: tests/unit/test_shim_%.c $(SHIM_LIB_OBJS) $(OCI_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SHIM_CFLAGS) -Itests/unit -o $@ $(filter-out %.h,$^) $(SHIM_LDLIBS) -lcmocka

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# km-shim execs km inside containers, where only a static km runs: a sanitizer build's km-shim
# is tested with the plain build's km (km itself is tested sanitized by every other e2e test).
CONTAINER_KM := $(if $(SAN),build/bin/km,$(BUILD)/bin/km)
# The whole suite runs once per syscall path (tests/e2e/run.sh, SYSCALL_PATHS): both must pass.
SYSCALL_PATHS ?= exit poll
e2e: km shim guests tools bundles test-km
	@SYSCALL_PATHS="$(SYSCALL_PATHS)" KM=$(BUILD)/bin/km KM_TEST=$(TEST_KM) KM_SHIM=$(BUILD)/bin/km-shim KM_SHIM_KM=$(abspath $(CONTAINER_KM)) BUNDLES=$(BUNDLE_DIR) GUESTS=$(GUEST_DIR) GO_GUESTS=$(GO_GUEST_DIR) TOOLS=build/tests/tools tests/e2e/run.sh

test: unit e2e

# check also builds the benchmarks (not run: make bench), so they cannot rot unseen.
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C bench build BUILD=$(abspath $(BUILD)) KM=$(abspath $(BUILD)/bin/km)
	@$(MAKE) --no-print-directory test

asan: deps
	@$(MAKE) --no-print-directory guests tools km
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)/bin/km

bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C bench BUILD=$(abspath $(BUILD)) KM=$(abspath $(BUILD)/bin/km)

# The ELF fuzz target's own check is compiled into its replay test, so make check builds it too.
$(BUILD)/tests/unit/test_elf_fuzz_replay: tests/fuzz/fuzz_elf.c tests/fuzz/fuzz_elf.h tests/unit/fuzz_replay.h
$(BUILD)/tests/unit/test_oci_fuzz_replay: tests/fuzz/fuzz_oci_config.c tests/fuzz/fuzz_oci_config.h tests/unit/fuzz_replay.h

# Fuzzing (tests/fuzz/README.md), each for FUZZ_SECONDS:
#   make fuzz            the libFuzzer targets (clang): fuzz-snapshot, fuzz-elf, then fuzz-oci
#   make fuzz-syscalls   the guest-syscall fuzzer (tests/guests/sysfuzz.c) under the ASan km
FUZZ_SECONDS ?= 300
fuzz: fuzz-snapshot fuzz-elf fuzz-oci
# One process, not -jobs: -jobs writes fuzz-N.log into the working directory and hides crashes
# from the exit status (77 crash or leak, 70 timeout; the input lands in build/fuzz/artifacts/).
fuzz-snapshot: km
	@scripts/deps.sh --fuzz
	@tests/fuzz/build.sh build/fuzz/fuzz_snapshot
	@mkdir -p build/fuzz/work build/fuzz/artifacts
	build/fuzz/fuzz_snapshot -max_len=65536 -timeout=5 -rss_limit_mb=2048 -use_value_profile=1 \
		-dict=tests/fuzz/snapshot.dict -artifact_prefix=build/fuzz/artifacts/ \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/work tests/fuzz/corpus
fuzz-elf: $(BUILD)/gen/km_syscall_names.h
	@scripts/deps.sh --fuzz
	@tests/fuzz/build.sh elf build/fuzz/fuzz_elf
	@mkdir -p build/fuzz/elf-work build/fuzz/elf-artifacts
	build/fuzz/fuzz_elf -max_len=16384 -timeout=5 -rss_limit_mb=2048 -use_value_profile=1 \
		-dict=tests/fuzz/elf.dict -artifact_prefix=build/fuzz/elf-artifacts/ \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/elf-work tests/fuzz/elf-corpus
fuzz-oci:
	@scripts/deps.sh --fuzz
	@tests/fuzz/build.sh oci build/fuzz/fuzz_oci_config
	@mkdir -p build/fuzz/oci-work build/fuzz/oci-artifacts
	build/fuzz/fuzz_oci_config -max_len=16384 -timeout=5 -rss_limit_mb=2048 -use_value_profile=1 \
		-dict=tests/fuzz/oci.dict -artifact_prefix=build/fuzz/oci-artifacts/ \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/oci-work tests/fuzz/oci-corpus
fuzz-syscalls: deps
	@$(MAKE) --no-print-directory guests
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" km
	tests/fuzz/sysfuzz.sh build/asan/bin/km $(FUZZ_SECONDS)

clean:
	rm -rf build

# Syscall names for --trace, from the installed kernel headers.
$(BUILD)/gen/km_syscall_names.h: /usr/include/x86_64-linux-gnu/asm/unistd_64.h
	@mkdir -p $(dir $@)
	awk 'BEGIN { print "/* generated from <asm/unistd_64.h> */"; print "static const char *const km_syscall_names[] = {" } \
	     $$1 == "#define" && $$2 ~ /^__NR_/ { sub("__NR_", "", $$2); printf "\t[%d] = \"%s\",\n", $$3, $$2 } \
	     END { print "};" }' $< > $@
$(BUILD)/obj/km/sys/km_syscall.o $(BUILD)/obj/km/km_seccomp.o: $(BUILD)/gen/km_syscall_names.h

# km's seccomp filter, compiled to BPF at build time (km/gen/km_seccomp_gen.c, with km's flags:
# a sanitizer build gets the sanitizer's rules); km itself does not link libseccomp.
$(BUILD)/gen/km_seccomp_gen: km/gen/km_seccomp_gen.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lseccomp
$(BUILD)/gen/km_seccomp_bpf.h: $(BUILD)/gen/km_seccomp_gen
	$< $@.tmp && mv $@.tmp $@
$(BUILD)/obj/km/km_seccomp.o: $(BUILD)/gen/km_seccomp_bpf.h

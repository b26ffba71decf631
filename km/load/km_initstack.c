/* Initial stack: see km_initstack.h. */
#include "km_initstack.h"

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#define DEFAULT_STACK (8ul << 20)
#define MIN_GAP (128ul << 20) /* Linux keeps at least this between the stack and mmap_base */
#define MAX_AUXV 32

/* A cursor that fills the stack downwards from the top, in host memory. */
typedef struct stack_writer {
	uint8_t *host_top; /* host address of gva `top` */
	uint64_t top, bottom, sp;
} stack_writer_t;

static uint64_t push_bytes(stack_writer_t *w, const void *p, size_t n)
{
	if (w->sp - w->bottom < n)
		return 0;
	w->sp -= n;
	memcpy(w->host_top - (w->top - w->sp), p, n);
	return w->sp;
}

static uint64_t push_str(stack_writer_t *w, const char *s)
{
	return push_bytes(w, s, strlen(s) + 1);
}

static uint64_t stack_size(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_STACK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < (128ul << 10))
		return DEFAULT_STACK;
	return KM_PAGE_UP(rl.rlim_cur > (1ul << 30) ? (1ul << 30) : rl.rlim_cur);
}

static uint64_t hwcap(void)
{
	unsigned a, b, c, d;
	return __get_cpuid(1, &a, &b, &c, &d) ? d : 0;
}

static size_t count(char *const v[])
{
	size_t n = 0;
	while (v[n] != NULL)
		n++;
	return n;
}

int km_initstack_map(km_guest_t *g, bool exec_stack, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	uint64_t size = stack_size(), top = KM_USER_TOP;
	int prot = PROT_READ | PROT_WRITE | (exec_stack ? PROT_EXEC : 0);
	int64_t base = km_mm_map(mm, top - size, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0,
				 KM_VMA_STACK, NULL);
	if (base < 0)
		return km_err_set(err, (int)-base, "mapping the %lu KiB stack", (unsigned long)(size >> 10));
	mm->stack_top = top;
	mm->mmap_base = KM_PAGE_DOWN(top - (size > MIN_GAP ? size : MIN_GAP) - (1ul << 20));
	return 0;
}

int km_initstack_build(km_guest_t *g, const km_elf_info_t *elf, const km_interp_info_t *interp,
		       char *const argv[], char *const envp[], uint64_t *rsp, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	if (mm->stack_top == 0 && km_initstack_map(g, elf->exec_stack, err) < 0)
		return -1;
	uint64_t size = stack_size(), top = mm->stack_top;

	stack_writer_t w = {.host_top = km_gva_to_hva(mm, top - 1, 1, KM_ACC_WRITE) + 1, .top = top,
			    .bottom = top - size, .sp = top};
	size_t argc = count(argv), envc = count(envp);
	uint64_t zero = 0;
	push_bytes(&w, &zero, sizeof(zero)); /* Linux ends the stack with a NULL word */
	uint64_t execfn = push_str(&w, g->exe_path);
	uint64_t str_argv[argc + 1], str_envp[envc + 1];
	for (size_t i = envc; i-- > 0;)
		str_envp[i] = push_str(&w, envp[i]);
	for (size_t i = argc; i-- > 0;)
		str_argv[i] = push_str(&w, argv[i]);
	g->arg_start = argc > 0 ? str_argv[0] : 0;
	g->arg_end = argc > 0 ? str_argv[argc - 1] + strlen(argv[argc - 1]) + 1 : 0;
	g->env_start = envc > 0 ? str_envp[0] : 0;
	g->env_end = envc > 0 ? str_envp[envc - 1] + strlen(envp[envc - 1]) + 1 : 0;
	uint64_t platform = push_str(&w, "x86_64");
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return km_err_set(err, errno, "getrandom for AT_RANDOM");
	uint64_t random = push_bytes(&w, rnd, sizeof(rnd));

	uint64_t auxv[MAX_AUXV * 2], *a = auxv;
#define AUX(k, v) (*a++ = (k), *a++ = (uint64_t)(v))
	AUX(AT_HWCAP, hwcap());
	AUX(AT_PAGESZ, KM_PAGE_SIZE);
	AUX(AT_CLKTCK, sysconf(_SC_CLK_TCK));
	AUX(AT_PHDR, elf->phdr);
	AUX(AT_PHENT, elf->phent);
	AUX(AT_PHNUM, elf->phnum);
	AUX(AT_BASE, interp != NULL ? interp->base : 0);
	AUX(AT_FLAGS, 0);
	AUX(AT_ENTRY, elf->entry);
	AUX(AT_UID, getuid());
	AUX(AT_EUID, geteuid());
	AUX(AT_GID, getgid());
	AUX(AT_EGID, getegid());
	AUX(AT_SECURE, 0);
	AUX(AT_RANDOM, random);
	AUX(AT_HWCAP2, getauxval(AT_HWCAP2));
	AUX(AT_EXECFN, execfn);
	AUX(AT_PLATFORM, platform);
	AUX(AT_MINSIGSTKSZ, getauxval(AT_MINSIGSTKSZ));
	AUX(AT_NULL, 0);
#undef AUX
	size_t auxv_bytes = (size_t)(a - auxv) * sizeof(uint64_t);
	/* rsp must be 16-byte aligned at argc: size the pointer block, then align below it. */
	size_t words = 1 + argc + 1 + envc + 1;
	uint64_t block = words * 8 + auxv_bytes;
	if (w.sp - w.bottom < block + 16)
		return km_err_set(err, E2BIG, "arguments and environment do not fit the stack");
	w.sp = (w.sp - block) & ~15ul;
	uint64_t sp = w.sp;
	uint64_t *p = (uint64_t *)(w.host_top - (top - sp));
	*p++ = argc;
	for (size_t i = 0; i < argc; i++)
		*p++ = str_argv[i];
	*p++ = 0;
	for (size_t i = 0; i < envc; i++)
		*p++ = str_envp[i];
	*p++ = 0;
	memcpy(p, auxv, auxv_bytes);
	g->auxv = malloc(auxv_bytes);
	if (g->auxv == NULL)
		return km_err_set(err, ENOMEM, "copying the auxiliary vector");
	memcpy(g->auxv, auxv, auxv_bytes);
	g->auxv_len = auxv_bytes;
	if (execfn == 0 || random == 0 || platform == 0)
		return km_err_set(err, E2BIG, "arguments and environment do not fit the stack");
	*rsp = sp;
	g->start_stack = sp;
	return 0;
}

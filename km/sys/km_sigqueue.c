/* Pending signal queues: see km_sigqueue.h. */
#include "km_sigqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Faults first, as Linux dequeues them (its SYNCHRONOUS_MASK). */
#define SYNC_MASK                                                                                             \
	(KM_SIGBIT(SIGSEGV) | KM_SIGBIT(SIGBUS) | KM_SIGBIT(SIGILL) | KM_SIGBIT(SIGTRAP) | KM_SIGBIT(SIGFPE) |  \
	 KM_SIGBIT(SIGSYS))

static bool is_rt(int sig)
{
	return sig >= 32;
}

int km_sigqueue_add(km_sigqueue_t *q, const siginfo_t *info)
{
	int sig = info->si_signo;
	if (sig < 1 || sig > 64)
		return -EINVAL;
	if (!is_rt(sig) && (q->set & KM_SIGBIT(sig)))
		return 1;
	if (q->n >= KM_SIGQUEUE_MAX)
		return -EAGAIN;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 8;
		siginfo_t *n = realloc(q->info, cap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		q->info = n;
		q->cap = cap;
	}
	q->info[q->n++] = *info;
	q->set |= KM_SIGBIT(sig);
	return 0;
}

/* The signal to take among `ready`: a fault first, else the lowest. */
static int pick(uint64_t ready)
{
	uint64_t sync = ready & SYNC_MASK;
	uint64_t m = sync ? sync : ready;
	return m ? __builtin_ctzll(m) + 1 : 0;
}

bool km_sigqueue_take_sig(km_sigqueue_t *q, int sig, siginfo_t *out)
{
	if (sig < 1 || sig > 64 || !(q->set & KM_SIGBIT(sig)))
		return false;
	size_t i = 0;
	while (i < q->n && q->info[i].si_signo != sig)
		i++;
	if (i == q->n) {
		q->set &= ~KM_SIGBIT(sig); /* cannot happen: set and entries agree */
		return false;
	}
	*out = q->info[i];
	memmove(&q->info[i], &q->info[i + 1], (q->n - i - 1) * sizeof(*q->info));
	q->n--;
	bool more = false;
	for (size_t j = i; j < q->n && !more; j++)
		more = q->info[j].si_signo == sig;
	if (!more)
		q->set &= ~KM_SIGBIT(sig);
	return true;
}

bool km_sigqueue_take(km_sigqueue_t *q, uint64_t allowed, siginfo_t *out)
{
	int sig = pick(q->set & allowed);
	return sig != 0 && km_sigqueue_take_sig(q, sig, out);
}

void km_sigqueue_discard(km_sigqueue_t *q, uint64_t mask)
{
	if (!(q->set & mask))
		return;
	size_t kept = 0;
	for (size_t i = 0; i < q->n; i++)
		if (!(KM_SIGBIT(q->info[i].si_signo) & mask))
			q->info[kept++] = q->info[i];
	q->n = kept;
	q->set &= ~mask;
}

const siginfo_t *km_sigqueue_at(const km_sigqueue_t *q, size_t i)
{
	return i < q->n ? &q->info[i] : NULL;
}

void km_sigqueue_free(km_sigqueue_t *q)
{
	free(q->info);
	memset(q, 0, sizeof(*q));
}

/*
 * Reading /proc/self/fdinfo text (km_fdprobe_t.fdinfo) for the event kinds (eventfd, timerfd,
 * epoll, inotify): lines "key: value" whose value the kernel formats with printf.
 */
#ifndef KM_FDINFO_H
#define KM_FDINFO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The text after "key:" (blanks skipped) on the line starting with key, or NULL. */
static inline const char *km_fdinfo_field(const char *info, const char *key)
{
	size_t n = strlen(key);
	for (const char *l = info; l != NULL && *l != '\0';) {
		if (strncmp(l, key, n) == 0 && l[n] == ':') {
			l += n + 1;
			while (*l == ' ' || *l == '\t')
				l++;
			return l;
		}
		l = strchr(l, '\n');
		if (l != NULL)
			l++;
	}
	return NULL;
}

/* The number of field key in base `base` into *v; false if absent or not a number. */
static inline bool km_fdinfo_u64(const char *info, const char *key, int base, uint64_t *v)
{
	const char *s = km_fdinfo_field(info, key);
	char *end;
	if (s == NULL || !((*s >= '0' && *s <= '9') || (base == 16 && ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f'))))
		return false;
	*v = strtoull(s, &end, base);
	return end != s;
}

#endif

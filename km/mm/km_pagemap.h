/*
 * km's own /proc/self/pagemap, read for ranges of guest memory's host mapping: which pages hold
 * something of their own (present or swapped, anonymous or a private copy) rather than nothing
 * or a file's page. The snapshot writer and the lease's detach both ask it.
 */
#ifndef KM_PAGEMAP_H
#define KM_PAGEMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "km_mm.h"

#define KM_PM_PRESENT (1ull << 63)
#define KM_PM_SWAPPED (1ull << 62)
#define KM_PM_FILE (1ull << 61) /* the page is the file's (page cache), not a private copy */

/* The n pagemap entries of the host pages from `host` on (page aligned) into e. False if
 * pagemap is -1 or the read comes up short: the caller then assumes every page matters. */
static inline bool km_pagemap_read(int pagemap, const void *host, uint64_t n, uint64_t *e)
{
	off_t at = (off_t)((uintptr_t)host / KM_PAGE_SIZE * sizeof(uint64_t));
	return pagemap >= 0 && pread(pagemap, e, n * sizeof(uint64_t), at) == (ssize_t)(n * sizeof(uint64_t));
}

#endif

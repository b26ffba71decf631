/* Placeholder until the dirty tracker lands (issue 11): tracking never starts, so every snapshot
 * is a full one. The contract is km_dirty.h. */
#include <stdlib.h>

#include "km_dirty.h"

int km_dirty_start(struct km_guest *g, km_err_t **err)
{
	(void)g;
	(void)err;
	return 0;
}

void km_dirty_mark(struct km_mm *mm, uint64_t gva, uint64_t len)
{
	(void)mm;
	(void)gva;
	(void)len;
}

int km_dirty_collect(struct km_guest *g, uint64_t ***holds, km_err_t **err)
{
	(void)g;
	*holds = NULL;
	return km_err_set(err, 0, "pages changed since the last snapshot are not tracked yet");
}

void km_dirty_return(struct km_guest *g, uint64_t **holds)
{
	(void)g;
	(void)holds;
}

void km_dirty_free(uint64_t **holds, size_t n)
{
	if (holds == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(holds[i]);
	free(holds);
}

bool km_dirty_on(const struct km_guest *g)
{
	(void)g;
	return false;
}

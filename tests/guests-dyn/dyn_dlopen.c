/*
 * dlopen of a library after start (libdynplug.so, by the path in argv[1]; by name through
 * LD_LIBRARY_PATH when argv[1] is a bare name), its functions, data and thread-local data
 * (dynamic TLS), dlclose, and dlopen's error for a missing library (tests/e2e/dynlink.sh).
 */
#include <dlfcn.h>
#include <pthread.h>

#include "../guests/check.h"

typedef long (*sum_fn)(long);

static void *thread_main(void *arg)
{
	sum_fn f = (sum_fn)arg;
	long *r = malloc(sizeof(long));
	*r = f(1); /* this thread's plug_tls starts at 7 again */
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dyn_dlopen LIBRARY\n");
		return 2;
	}
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!CHECK(h != NULL, "dlopen of the plugin"))
		printf("  %s\n", dlerror());
	if (h == NULL)
		return check_done();
	sum_fn f = (sum_fn)dlsym(h, "plug_sum");
	int *data = dlsym(h, "plug_data");
	long *tls = dlsym(h, "plug_tls"); /* the calling thread's copy */
	CHECK(f != NULL && data != NULL && tls != NULL, "dlsym of a function, data and TLS");
	CHECK(f(3) == 10 + 10, "a function of the plugin runs");
	CHECK(*tls == 10, "the plugin's TLS seen through dlsym");
	data[0] = 11;
	CHECK(f(0) == 10 + 20, "the plugin's data is writable");
	pthread_t t;
	void *r;
	pthread_create(&t, NULL, thread_main, (void *)f);
	pthread_join(t, &r);
	CHECK(*(long *)r == 8 + 20, "a new thread gets its own copy of the plugin's TLS");
	free(r);
	CHECK(dlclose(h) == 0, "dlclose");
	CHECK(dlopen("libdyn-no-such-library.so", RTLD_NOW) == NULL && dlerror() != NULL,
	      "dlopen of a missing library fails with a message");
	return check_done();
}

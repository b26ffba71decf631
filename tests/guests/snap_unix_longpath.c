/*
 * A unix listener bound to a path that fills sun_path (108 bytes, no NUL: Linux allows it) across
 * a snapshot: `snap_unix_longpath DIR snap` binds DIR/<padding> and snapshots itself (km exits);
 * the resumed copy must still be listening there (a client connects and is accepted). Without
 * "snap" it checks the same without a snapshot. Natively the snapshot mode exits 77.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "snap_common.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("usage: snap_unix_longpath DIR [snap]\n");
		return 2;
	}
	bool snap = argc > 2;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t dl = strlen(argv[1]);
	CHECK(dl + 2 < sizeof(a.sun_path), "the directory leaves room for a name");
	memcpy(a.sun_path, argv[1], dl);
	a.sun_path[dl] = '/';
	memset(a.sun_path + dl + 1, 'p', sizeof(a.sun_path) - dl - 1); /* all 108 bytes, no NUL */
	char path[sizeof(a.sun_path) + 1];
	memcpy(path, a.sun_path, sizeof(a.sun_path));
	path[sizeof(a.sun_path)] = '\0';
	unlink(path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 4) == 0,
	      "a listener bound to a 108-byte path");
	long r = snap ? snap_take("longpath", 0, NULL, NULL) : KM_SNAPSHOT_RESUMED;
	if (r == -ENOSYS)
		snap_not_under_km();
	if (r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(c >= 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, "a client connects to it");
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(s >= 0 && write(c, "x", 1) == 1, "the listener accepts it");
	char b;
	CHECK(read(s, &b, 1) == 1 && b == 'x', "and they talk");
	unlink(path);
	return check_done();
}

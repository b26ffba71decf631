/*
 * zlib_file: gzip-style compression (zlib, level 6) from a file to a file and back.
 *   zlib_file gen FILE MIB   writes MIB MiB of mixed data into FILE (text of words, numeric
 *                            records, random bytes and zeros, in 64 KiB blocks; always the same)
 *   zlib_file run FILE       compresses FILE into FILE.gz (deflate, level 6, gzip wrapper),
 *                            then decompresses FILE.gz into FILE.out, 1 MiB reads and writes;
 *                            the gzip trailer's CRC-32 and length check the result; FILE.gz and
 *                            FILE.out are removed after
 * run prints "zlib_file bytes=<n> compressed=<n> compress_s=<s> decompress_s=<s>", each phase
 * timed with CLOCK_MONOTONIC from open to close of its files.
 * A failed call prints "zlib_file: <what>: <error>" on stderr and exits 1; bad usage 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1 << 20)
#define BLOCK (64 << 10)

static unsigned char in[CHUNK], out[CHUNK];

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "zlib_file: %s: %s\n", what, detail ? detail : strerror(errno));
	exit(1);
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* One 64 KiB block of one of the four kinds. */
static void fill_block(unsigned char *b)
{
	static const char *words[] = {"the", "monitor", "syscall", "memory", "page", "guest", "vcpu", "snapshot",
				      "kernel", "thread", "signal", "file", "socket", "exit", "poll", "server"};
	unsigned kind = (unsigned)(next() % 20);
	size_t i = 0;
	if (kind < 10) { /* text */
		while (i < BLOCK) {
			const char *w = words[next() % 16];
			while (*w && i < BLOCK)
				b[i++] = (unsigned char)*w++;
			if (i < BLOCK)
				b[i++] = next() % 12 ? ' ' : '\n';
		}
	} else if (kind < 15) { /* records */
		char rec[64];
		while (i < BLOCK) {
			int n = snprintf(rec, sizeof rec, "%08llu,%5u,%c\n", (unsigned long long)(next() % 100000000),
					 (unsigned)(next() % 65536), 'A' + (int)(next() % 4));
			for (int k = 0; k < n && i < BLOCK; k++)
				b[i++] = (unsigned char)rec[k];
		}
	} else if (kind < 18) { /* random */
		for (; i < BLOCK; i += 8) {
			uint64_t r = next();
			memcpy(b + i, &r, 8);
		}
	} else {
		memset(b, 0, BLOCK);
	}
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write", NULL);
		p += w;
		n -= (size_t)w;
	}
}

static size_t read_some(int fd, unsigned char *p, size_t n)
{
	ssize_t r;
	do
		r = read(fd, p, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("read", NULL);
	return (size_t)r;
}

static void gen(const char *path, long mib)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path, NULL);
	for (long done = 0; done < mib * (1 << 20); done += BLOCK) {
		fill_block(in);
		write_all(fd, in, BLOCK);
	}
	if (close(fd) < 0)
		die("close", NULL);
}

/* Streams src through zlib (deflate when compress, else inflate) into dst; returns bytes written. */
static uint64_t stream(const char *src, const char *dst, int compress)
{
	int fi = open(src, O_RDONLY | O_CLOEXEC), fo = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fi < 0 || fo < 0)
		die(fi < 0 ? src : dst, NULL);
	z_stream z;
	memset(&z, 0, sizeof z);
	int rc = compress ? deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) : inflateInit2(&z, 15 + 16);
	if (rc != Z_OK)
		die("zlib init", zError(rc));
	uint64_t written = 0;
	int end = 0;
	while (!end) {
		z.avail_in = (uInt)read_some(fi, in, CHUNK);
		z.next_in = in;
		int flush = z.avail_in == 0 ? Z_FINISH : Z_NO_FLUSH;
		if (!compress && z.avail_in == 0)
			die("inflate", "the compressed file ends early");
		do {
			z.avail_out = CHUNK;
			z.next_out = out;
			rc = compress ? deflate(&z, flush) : inflate(&z, Z_NO_FLUSH);
			if (rc == Z_STREAM_ERROR || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR || rc == Z_NEED_DICT)
				die(compress ? "deflate" : "inflate (CRC or data)", zError(rc));
			write_all(fo, out, CHUNK - z.avail_out);
			written += CHUNK - z.avail_out;
			if (rc == Z_STREAM_END)
				end = 1;
		} while (z.avail_out == 0 && !end);
	}
	compress ? deflateEnd(&z) : inflateEnd(&z);
	if (close(fi) < 0 || close(fo) < 0)
		die("close", NULL);
	return written;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "gen") == 0 && atol(argv[3]) > 0) {
		gen(argv[2], atol(argv[3]));
		return 0;
	}
	if (argc != 3 || strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "usage: zlib_file gen FILE MIB | run FILE\n");
		return 2;
	}
	char gz[4096], back[4096];
	snprintf(gz, sizeof gz, "%s.gz", argv[2]);
	snprintf(back, sizeof back, "%s.out", argv[2]);
	double t0 = now_s();
	uint64_t compressed = stream(argv[2], gz, 1);
	double t1 = now_s();
	uint64_t bytes = stream(gz, back, 0);
	double t2 = now_s();
	unlink(gz);
	unlink(back);
	printf("zlib_file bytes=%llu compressed=%llu compress_s=%.4f decompress_s=%.4f\n", (unsigned long long)bytes,
	       (unsigned long long)compressed, t1 - t0, t2 - t1);
	return 0;
}

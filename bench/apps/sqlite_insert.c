/*
 * sqlite_insert txn|autocommit DB [N]: N rows inserted into a new sqlite database file DB
 * (journal_mode=WAL, synchronous=NORMAL), one prepared INSERT of an integer and a 100-byte text:
 *   txn         in transactions of 100 rows (BEGIN ... COMMIT); default N = 20000
 *   autocommit  each row its own statement, committed alone; default N = 2000
 * DB and its -wal and -shm files are removed before and after. Timed with CLOCK_MONOTONIC around the
 * inserts (table created and statement prepared before); the row count is checked after.
 * Prints: "sqlite_insert mode=<mode> rows=<N> seconds=<s> us_per_row=<x>".
 * Any sqlite error prints "sqlite_insert: <what>: <message>" on stderr and exits 1; bad usage 2.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sqlite3 *db;

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what)
{
	fprintf(stderr, "sqlite_insert: %s: %s\n", what, db ? sqlite3_errmsg(db) : "cannot open");
	exit(1);
}

static void exec(const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		die(sql);
}

/* DB and the files sqlite keeps beside it in WAL mode. */
static void remove_db(const char *path)
{
	char side[4096];
	unlink(path);
	snprintf(side, sizeof side, "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", path);
	unlink(side);
}

int main(int argc, char **argv)
{
	int txn = argc > 1 && strcmp(argv[1], "txn") == 0;
	long n = argc > 3 ? atol(argv[3]) : (txn ? 20000 : 2000);
	if (argc < 3 || argc > 4 || (!txn && strcmp(argv[1], "autocommit") != 0) || n < 1) {
		fprintf(stderr, "usage: sqlite_insert txn|autocommit DB [N>0]\n");
		return 2;
	}
	const char *path = argv[2];
	remove_db(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die("open");
	exec("PRAGMA journal_mode=WAL");
	exec("PRAGMA synchronous=NORMAL");
	exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(db, "INSERT INTO t (k, v) VALUES (?, ?)", -1, &ins, NULL) != SQLITE_OK)
		die("prepare");
	char text[101];
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		if (txn && i % 100 == 0)
			exec("BEGIN");
		for (int j = 0; j < 100; j++)
			text[j] = (char)('a' + (i * 31 + j * 7) % 26);
		text[100] = 0;
		sqlite3_bind_int64(ins, 1, (i * 2654435761L) % 1000003);
		sqlite3_bind_text(ins, 2, text, 100, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			die("insert");
		sqlite3_reset(ins);
		if (txn && (i % 100 == 99 || i == n - 1))
			exec("COMMIT");
	}
	double t1 = now_s();
	sqlite3_finalize(ins);
	sqlite3_stmt *count;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &count, NULL) != SQLITE_OK ||
	    sqlite3_step(count) != SQLITE_ROW)
		die("count");
	long rows = (long)sqlite3_column_int64(count, 0);
	sqlite3_finalize(count);
	if (rows != n) {
		fprintf(stderr, "sqlite_insert: %ld rows in the table, %ld inserted\n", rows, n);
		return 1;
	}
	if (sqlite3_close(db) != SQLITE_OK)
		die("close");
	remove_db(path);
	printf("sqlite_insert mode=%s rows=%ld seconds=%.4f us_per_row=%.1f\n", argv[1], n, t1 - t0,
	       (t1 - t0) * 1e6 / (double)n);
	return 0;
}

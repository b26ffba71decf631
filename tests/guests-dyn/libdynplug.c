/* Opened with dlopen by dyn_dlopen (tests/e2e/dynlink.sh): a function, data, and thread-local
 * data of a module loaded after start (dynamic TLS: __tls_get_addr allocates it per thread). */
__thread long plug_tls = 7;
int plug_data[4] = {1, 2, 3, 4};

long plug_sum(long x)
{
	plug_tls += x;
	return plug_tls + plug_data[0] + plug_data[1] + plug_data[2] + plug_data[3];
}

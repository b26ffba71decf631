/* The fixed number of km's fd on its own binary (opened at start by main): km's seccomp filter,
 * compiled at build time (km/gen/km_seccomp_gen.c), allows execveat only on this dirfd, and km's
 * execve (km_exec.c) re-executes km through it. In km's range, below the 1024 every host allows. */
#ifndef KM_EXEC_FD_H
#define KM_EXEC_FD_H

#define KM_EXEC_SELF_FD 1023

#endif

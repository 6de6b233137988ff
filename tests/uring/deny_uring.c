/* deny-uring CMD [ARG...]: run CMD where io_uring is not permitted.
 *
 * Installs a seccomp filter under which io_uring_setup fails with EPERM —
 * what Docker's default profile and kernel.io_uring_disabled=2 both do —
 * and every other system call is allowed, then execs CMD. The filter is
 * inherited by CMD and all it starts. No privilege needed: with
 * PR_SET_NO_NEW_PRIVS any process may filter itself.
 *
 * Exits 77 (ctest: skipped) if this kernel or container refuses seccomp
 * filters, since then the case cannot be set up; 1 if the exec fails. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define NATIVE_ARCH AUDIT_ARCH_I386
#else
#error "deny_uring.c: add this architecture's AUDIT_ARCH_ value"
#endif

#define SKIPPED 77

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: deny-uring CMD [ARG...]\n");
        return 2;
    }
    /* System call numbers are per architecture: a call made through
     * another ABI is let through (nothing here makes one). */
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        printf("deny-uring: no seccomp filters here (%s): case skipped\n", strerror(errno));
        return SKIPPED;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "deny-uring: %s: %s\n", argv[1], strerror(errno));
    return 1;
}

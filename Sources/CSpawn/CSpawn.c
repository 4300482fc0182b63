// The child's steps between fork and exec (see include/CSpawn.h). After fork only async-signal-safe calls are
// made, and the user is changed with raw system calls: the child has one thread, and glibc's setuid() would try
// to reach the parent's other threads.
#define _GNU_SOURCE
#include "CSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void cspawn_fail(int pipe_fd, int code) {
    // The parent reads the errno from the pipe; exec closes the pipe (O_CLOEXEC) when it succeeds.
    ssize_t ignored = write(pipe_fd, &code, sizeof code);
    (void)ignored;
    _exit(127);
}

_Static_assert(sizeof(uid_t) == sizeof(unsigned int) && sizeof(gid_t) == sizeof(unsigned int) && sizeof(pid_t) == sizeof(int),
               "CSpawn.h spells uid_t, gid_t and pid_t as unsigned int and int");

int cspawn_start(const char *path, char *const argv[], char *const envp[],
                 int change_user, unsigned int uid, unsigned int gid, int *pid) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return errno;
    sigset_t all, old;
    sigfillset(&all);
    // No signal handler of the parent may run in the child before its dispositions are reset.
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t child = fork();
    if (child == 0) {
        close(report[0]);
        struct sigaction standard;
        memset(&standard, 0, sizeof standard);
        standard.sa_handler = SIG_DFL;
        for (int signal = 1; signal < NSIG; signal++) sigaction(signal, &standard, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (setpgid(0, 0) != 0) cspawn_fail(report[1], errno);
        int null = open("/dev/null", O_RDWR);
        if (null < 0) cspawn_fail(report[1], errno);
        for (int fd = 0; fd <= 2; fd++) {
            if (dup2(null, fd) < 0) cspawn_fail(report[1], errno);
        }
        if (null > 2) close(null);
        if (change_user) {
            if (syscall(SYS_setgroups, 0, NULL) != 0) cspawn_fail(report[1], errno);
            if (syscall(SYS_setresgid, gid, gid, gid) != 0) cspawn_fail(report[1], errno);
            if (syscall(SYS_setresuid, uid, uid, uid) != 0) cspawn_fail(report[1], errno);
        }
        execve(path, argv, envp);
        cspawn_fail(report[1], errno);
    }
    int fork_error = child < 0 ? errno : 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (fork_error != 0) {
        close(report[0]);
        return fork_error;
    }
    int code = 0;
    ssize_t got;
    do { got = read(report[0], &code, sizeof code); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof code) {
        // The child never ran the program: reap it here so no zombie is left.
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return code;
    }
    *pid = child;
    return 0;
}

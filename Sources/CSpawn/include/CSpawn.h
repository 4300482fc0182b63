// CSpawn: starts an exec health check as another user. posix_spawn(3) cannot change a child's user, and a
// fork in Swift may run code that is not async-signal-safe before exec; this does the child's few steps in C.
// The header includes no system header (uid_t, gid_t and pid_t are unsigned int and int on Linux): a system
// header first included through this module would be owned by it, hiding its names from Swift files that
// import only Glibc.
#ifndef CSPAWN_H
#define CSPAWN_H

/// Starts `path` with `argv` and `envp` in a new process group, its signal mask empty and every signal at its
/// default, stdin/stdout/stderr on /dev/null; when `change_user` is non-zero, with no supplementary groups
/// and its real, effective and saved ids set to `gid` and `uid` before exec. Returns 0 and sets `*pid`, or
/// returns the errno of the step that failed (fork, a user change, or exec itself) and starts nothing.
int cspawn_start(const char *path, char *const argv[], char *const envp[],
                 int change_user, unsigned int uid, unsigned int gid, int *pid);

#endif

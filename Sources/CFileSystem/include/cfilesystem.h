#ifndef CFILESYSTEM_H
#define CFILESYSTEM_H

/// Atomically swaps the directory entries `from` and `to` (both must exist): Linux's renameat2 with
/// RENAME_EXCHANGE, which glibc declares only under _GNU_SOURCE. Returns 0, or -1 with errno set.
int cfs_exchange(const char *from, const char *to);

#endif

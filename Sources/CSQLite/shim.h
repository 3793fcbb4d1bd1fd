#include <sqlite3.h>

/// SQLITE_TRANSIENT is a cast macro and does not import into Swift.
static inline sqlite3_destructor_type sevtrace_sqlite_transient(void) { return SQLITE_TRANSIENT; }

/// The virtual table structs, declared in C so that the SQLite base struct is guaranteed to come first.
typedef struct sevtrace_vtab {
    sqlite3_vtab base;
    void *owner;
} sevtrace_vtab;

typedef struct sevtrace_vtab_cursor {
    sqlite3_vtab_cursor base;
    void *state;
} sevtrace_vtab_cursor;

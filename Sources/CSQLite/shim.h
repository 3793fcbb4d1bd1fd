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

/// sqlite3_db_config is variadic and does not import: one wrapper per integer option.
static inline int sevtrace_db_config_int(sqlite3 *db, int op, int value) {
    return sqlite3_db_config(db, op, value, (int *)0);
}

/*
 * Declarative configuration tables.
 *
 * A component describes its settings once, as an array of mf_cfg_entry_t
 * that point into a plain C struct by offset.  From that one table come the
 * defaults, the parser for `key = value` files, the environment overrides
 * (<env_prefix><NAME IN UPPER CASE>) and the help text.  Every value is
 * parsed and range-checked; an error names the key, the value, the source
 * (file:line or environment variable) and what was expected.
 */
#ifndef MF_UTIL_CONFIG_H
#define MF_UTIL_CONFIG_H

#include <memfabric/mf_status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum mf_cfg_type {
    MF_CFG_STR,    /* char array of entry->str_size bytes in the struct */
    MF_CFG_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    MF_CFG_U32,    /* uint32_t, decimal or 0x hex */
    MF_CFG_U64,    /* uint64_t, decimal or 0x hex */
    MF_CFG_SIZE,   /* uint64_t bytes, with optional K/M/G/T suffix (1024) */
    MF_CFG_MS,     /* uint32_t milliseconds, with optional ms/s/m suffix */
    MF_CFG_LOGLVL, /* int: log level name */
} mf_cfg_type_t;

typedef struct mf_cfg_entry {
    const char *name; /* key in files, lower_snake_case */
    mf_cfg_type_t type;
    size_t offset;             /* offsetof(struct, field) */
    size_t str_size;           /* MF_CFG_STR: size of the char array */
    const char *default_value; /* parsed like any other value */
    uint64_t min;              /* numeric types: inclusive bounds; */
    uint64_t max;              /* min == max == 0 means unbounded */
    const char *help;
} mf_cfg_entry_t;

/* An old name of a key: it keeps working, with a warning the first time
 * a process uses it. */
typedef struct mf_cfg_alias {
    const char *old_name;
    const char *new_name;
} mf_cfg_alias_t;

typedef struct mf_cfg_table {
    const char *component;  /* e.g. "mf-bm", used in messages */
    const char *env_prefix; /* e.g. "MF_", NULL for no environment */
    const mf_cfg_entry_t *entries;
    size_t count;
    const mf_cfg_alias_t *aliases; /* may be NULL */
    size_t alias_count;
} mf_cfg_table_t;

#define MF_CFG_COUNT(_array) (sizeof(_array) / sizeof((_array)[0]))

/* Writes every default into obj.  Fails only if a default is malformed. */
mf_status_t mf_cfg_set_defaults(const mf_cfg_table_t *table, void *obj);

/* Parses and stores one value; MF_ERR_CONFIG with a logged reason. */
mf_status_t mf_cfg_set(const mf_cfg_table_t *table, void *obj, const char *key,
                       const char *value);

/* Same, with the origin ("file.conf:12") used in the error message. */
mf_status_t mf_cfg_set_from(const mf_cfg_table_t *table, void *obj,
                            const char *key, const char *value,
                            const char *origin);

/*
 * Parses `key = value` lines from text: '#' starts a comment, blank lines
 * are ignored, surrounding whitespace and one pair of double quotes around
 * the value are stripped.  Stops at the first error.
 */
mf_status_t mf_cfg_load_string(const mf_cfg_table_t *table, void *obj,
                               const char *text, size_t len,
                               const char *origin);

mf_status_t mf_cfg_load_file(const mf_cfg_table_t *table, void *obj,
                             const char *path);

/* Applies <env_prefix><NAME> variables that are set. */
mf_status_t mf_cfg_load_env(const mf_cfg_table_t *table, void *obj);

/* The environment variable of a key: prefix + the name in upper case,
 * with '.' as '_' ("MF_" + "tcp.lanes" -> "MF_TCP_LANES"). */
void mf_cfg_env_name(const char *prefix, const char *key, char *buf,
                     size_t len);

/* The current name of key: key itself, or the new name when key is an
 * alias of table (warned about once per process, naming origin). */
const char *mf_cfg_alias_resolve(const mf_cfg_table_t *table, const char *key,
                                 const char *origin);

/*
 * The `key = value` parser behind mf_cfg_load_string, for settings spread
 * over several tables: calls fn for every line ('#' comments, blank lines,
 * whitespace and one pair of quotes stripped), with origin "file:line";
 * stops at the first line fn fails.
 */
typedef mf_status_t (*mf_cfg_line_fn)(void *arg, const char *key,
                                      const char *value, const char *origin);
mf_status_t mf_cfg_parse_lines(const char *component, const char *text,
                               size_t len, const char *origin,
                               mf_cfg_line_fn fn, void *arg);

/* Reads a whole config file (at most 16 MiB) into *text_p (malloc'd,
 * NUL-terminated) and its length into *len_p. */
mf_status_t mf_cfg_read_file(const char *component, const char *path,
                             char **text_p, size_t *len_p);

/* Formats an entry's current value; returns buf. */
const char *mf_cfg_format(const mf_cfg_entry_t *entry, const void *obj,
                          char *buf, size_t len);

const mf_cfg_entry_t *mf_cfg_find(const mf_cfg_table_t *table, const char *key);

/* Prints every key with its default, environment variable and help. */
void mf_cfg_print_help(const mf_cfg_table_t *table, FILE *out);
/* The same, for keys another component forwards: each key as key_prefix +
 * name, its variable under env_prefix (NULL: none). */
void mf_cfg_print_help_as(const mf_cfg_table_t *table, FILE *out,
                          const char *key_prefix, const char *env_prefix);

/* Prints `key = value` for every key (a valid config file). */
void mf_cfg_dump(const mf_cfg_table_t *table, const void *obj, FILE *out);

/*
 * Settings kept as text: `key=value` lines in a char array of a public
 * struct, for the keys of a part whose struct the public one does not
 * carry (a transport's "<name>.<key>", TLS's "tls.<key>").  A section
 * names the part's table, the size of the struct it fills and the check
 * of that struct across keys (NULL: none).  Lines of keys the table does
 * not have belong to other sections and are skipped.
 */
typedef struct mf_cfg_section {
    const mf_cfg_table_t *table;
    size_t size;
    mf_status_t (*check)(const void *obj);
} mf_cfg_section_t;

/* Parses text into a new struct of sec->size bytes (defaults for what is
 * not set), checked; free() it. */
mf_status_t mf_cfg_text_parse(const mf_cfg_section_t *sec, const char *text,
                              void **obj_p);
/* Sets key (the section's) in text, a buffer of cap bytes: parsed and
 * checked with the rest, stored canonical.  MF_ERR_CONFIG (logged, naming
 * origin) for an unknown key or bad value, MF_ERR_TOO_LARGE if the text
 * would not fit; text is unchanged then. */
mf_status_t mf_cfg_text_set(const mf_cfg_section_t *sec, char *text, size_t cap,
                            const char *key, const char *value,
                            const char *origin);
/* The value of key in text, else its default, into buf; MF_ERR_CONFIG if
 * the section has no such key. */
mf_status_t mf_cfg_text_get(const mf_cfg_section_t *sec, const char *text,
                            const char *key, char *buf, size_t len);
/* Applies the <prefix><KEY> environment variables of the section's keys
 * to text. */
mf_status_t mf_cfg_text_load_env(const mf_cfg_section_t *sec, char *text,
                                 size_t cap, const char *prefix);

/* Parsers used by the table, exported for other code that reads sizes. */
mf_status_t mf_parse_size(const char *text, uint64_t *value_p);
mf_status_t mf_parse_u64(const char *text, uint64_t *value_p);
mf_status_t mf_parse_ms(const char *text, uint32_t *value_p);
mf_status_t mf_parse_bool(const char *text, bool *value_p);

#endif

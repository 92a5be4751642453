/*
 * config-table.h: the shape of one configuration option, shared by the
 * option table (config-table.c) and the reader that walks it (config.c).
 * Nothing else needs it: the rest of the daemon reads struct config.
 */
#ifndef CONFIG_TABLE_H
#define CONFIG_TABLE_H

#include <stdbool.h>
#include <stddef.h>

enum config_type {
	CONFIG_STRING,    /* char *; NULL when unset and without a default */
	CONFIG_INT,       /* int */
	CONFIG_UINT,      /* unsigned */
	CONFIG_SIZE,      /* size_t */
	CONFIG_BOOL,      /* bool */
	CONFIG_STRLIST,   /* struct strlist: a Lua sequence of strings */
	CONFIG_LOG_LEVEL, /* int: a level name in the file */
	CONFIG_JSON,      /* json_t *: a table, kept as JSON; NULL when unset */
};

/* Extra rule for a string or list item; returns why s is refused, or
 * NULL. s holds no NUL byte (the reader checks that first). */
typedef const char *(*config_check_fn)(const char *s, size_t len);

struct config_option {
	const char *name;
	enum config_type type;
	size_t offset; /* into struct config */
	/* Numbers: the inclusive range. Strings and list items: the
	 * inclusive range of their length in bytes. */
	long long min;
	long long max;
	long long def_num;           /* numbers and booleans */
	const char *def_str;         /* strings and levels; NULL: none */
	const char *const *def_list; /* lists: NULL-terminated; NULL: {} */
	config_check_fn check;       /* strings and list items; may be NULL */
	bool unique;                 /* lists: refuse a repeated item */
	const char *help;            /* one line for people */
};

extern const struct config_option config_options[];
extern const size_t config_noptions;

/* Item rules used by the table (config.c). */
const char *config_check_text(const char *s, size_t len);
const char *config_check_room(const char *s, size_t len);
const char *config_check_origin(const char *s, size_t len);

#endif

/*
 * command.c: the registry of slash commands. Scripts and plugins register
 * commands by name; a message starting with '/' from a room member is
 * looked up here. The core registers none itself, so until a script does,
 * every command answers unknown_command.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct command {
	char *name;
	char *owner;
	char *usage;
	char *help;
	command_fn fn;
	void *arg;
};

static struct map command_map;

static void
command_free(struct command *cmd)
{
	free(cmd->name);
	free(cmd->owner);
	free(cmd->usage);
	free(cmd->help);
	free(cmd);
}

bool
command_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > COMMAND_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

void
command_register(const char *name, const char *owner, const char *usage,
    const char *help, command_fn fn, void *arg)
{
	struct command *cmd = xcalloc(1, sizeof *cmd);
	struct command *old;

	cmd->name = xstrdup(name);
	cmd->owner = xstrdup(owner);
	cmd->usage = usage ? xstrdup(usage) : NULL;
	cmd->help = xstrdup(help ? help : "");
	cmd->fn = fn;
	cmd->arg = arg;
	old = map_remove(&command_map, name, strlen(name));
	if (old != NULL) {
		log_info("core", "command /%s of %s replaced by %s's", name,
		    old->owner, owner);
		command_free(old);
	}
	map_add(&command_map, name, strlen(name), cmd);
}

void
command_unregister_owner(const char *owner)
{
	size_t pos = 0;
	const char *key;
	void *v;

	while (map_next(&command_map, &pos, &key, &v)) {
		struct command *cmd = v;
		if (strcmp(cmd->owner, owner) == 0) {
			map_remove(&command_map, cmd->name, strlen(cmd->name));
			command_free(cmd);
		}
	}
}

static int
command_compare(const void *a, const void *b)
{
	const struct command *x = *(struct command *const *)a;
	const struct command *y = *(struct command *const *)b;

	return strcmp(x->name, y->name);
}

void
command_each(void (*fn)(const char *name, const char *usage,
    const char *help, void *arg), void *arg)
{
	struct command **v = xreallocarray(NULL, command_map.count + 1,
	    sizeof *v);
	size_t n = 0, pos = 0;
	void *cmd;

	while (map_next(&command_map, &pos, NULL, &cmd))
		v[n++] = cmd;
	qsort(v, n, sizeof *v, command_compare);
	for (size_t i = 0; i < n; i++)
		fn(v[i]->name, v[i]->usage, v[i]->help, arg);
	free(v);
}

enum proto_err
command_run(struct client *c, struct room *r, const json_t *id,
    const char *text, size_t len)
{
	struct command_ctx ctx = { .client = c, .room = r, .id = id };
	const char *p = text + 1, *end = text + len;
	size_t namelen = 0;
	struct command *cmd;
	enum proto_err e;
	char *args;

	while (p + namelen < end && p[namelen] != ' ' && p[namelen] != '\t' &&
	    p[namelen] != '\n')
		namelen++;
	cmd = map_find(&command_map, p, namelen);
	if (cmd == NULL)
		return PROTO_ERR_UNKNOWN_COMMAND;
	p += namelen;
	if (p < end)
		p++;
	args = xstrndup(p, (size_t)(end - p));
	ctx.args = args;
	e = cmd->fn(&ctx, cmd->arg);
	free(args);
	return e;
}

void
command_free_all(void)
{
	size_t pos = 0;
	void *v;

	while (map_next(&command_map, &pos, NULL, &v))
		command_free(v);
	map_free(&command_map);
}
